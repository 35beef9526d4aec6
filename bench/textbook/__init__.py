"""Baseline (a): the textbook Channels way to push STOMP, one consumer per connection and a group per destination."""
