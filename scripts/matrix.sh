#!/usr/bin/env bash
# The version matrix beside CI's main leg (.venv: Python 3.11 and the newest releases it can install). A leg is a
# file scripts/constraints-LEG.txt: its Python (a "# python: 3.X" line) and its pins.
#
#   oldest   Python 3.10, the lower bounds pyproject.toml declares   (scripts/constraints-oldest.txt)
#   newest   Python 3.13, the latest releases, pinned                (scripts/constraints-newest.txt)
#
# Each leg has its own venv (.venv-oldest, .venv-newest; rebuilt when pyproject.toml, its constraints or its
# interpreter change) with the package in editable mode and its test extra, and runs MATRIX_TESTS below with
# STOMP_PUSH_REQUIRE_ALL=1, as the main leg does: a failed test or a skipped mandatory (Redis, PostgreSQL) test fails
# the leg. Every leg runs even when one fails; the script exits non-zero if any failed and prints each leg's time.
#
#   scripts/matrix.sh              both legs
#   scripts/matrix.sh oldest       one leg
#   PYTEST_ARGS="-x -k logout" scripts/matrix.sh newest
#
# Interpreters come from pyenv (`pyenv root`/versions/3.X.*) or else from python3.X on PATH; a missing one fails
# its leg with the command that installs it. Packages come from PyPI only.
set -euo pipefail
cd "$(dirname "$0")/.."

# What a leg runs: the tests that do not need Node or Chromium (every unit test, the multi-server tests, the
# daphne seam and close-code tests over real daphne processes, the session engines and the sweep on SQLite and
# PostgreSQL), without the long reliability runs and fault injection, which the main leg covers.
MATRIX_TESTS=(
  tests/core tests/sessions tests/stomp tests/multiserver tests/test_*.py
  tests/reliability/test_daphne_frames.py tests/reliability/test_slow_consumer.py
)
MATRIX_MARKERS="not browser and not interop"

find_python() {
  local version=$1 candidate root
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    # the newest installed patch release of that minor version
    candidate=$(ls -d "$root/versions/$version".* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$candidate" ] && [ -x "$candidate/bin/python$version" ]; then
      echo "$candidate/bin/python$version"
      return
    fi
  fi
  if command -v "python$version" >/dev/null 2>&1; then
    command -v "python$version"
    return
  fi
  echo "matrix: no Python $version (install it: pyenv install $version)" >&2
  return 1
}

build_venv() {
  local leg=$1 python=$2 venv=.venv-$1 constraints=scripts/constraints-$1.txt stamp
  stamp=$(cat pyproject.toml "$constraints" | sha256sum | cut -d' ' -f1)" $("$python" -VV | head -n 1)"
  if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$stamp" ]; then
    return
  fi
  echo "matrix[$leg]: building $venv with $("$python" -V) and $constraints"
  # Each step ends the leg on failure: `set -e` does not apply inside a function called as `run_leg || ...`.
  rm -rf "$venv"
  "$python" -m venv "$venv" || return 1
  "$venv/bin/python" -m pip install --quiet --upgrade pip || return 1
  "$venv/bin/python" -m pip install --quiet -c "$constraints" -e ".[test]" || return 1
  "$venv/bin/python" -m pip check || return 1
  echo "$stamp" >"$venv/.installed"
}

# The installed versions must be the pinned ones: a constraint pip could not apply is a wrong leg, not a pass.
check_pins() {
  local leg=$1 venv=.venv-$1 name version installed status=0
  while read -r name version; do
    installed=$("$venv/bin/python" -c "from importlib.metadata import version; print(version('$name'))" 2>/dev/null ||
      echo absent)
    if [ "$installed" != "$version" ]; then
      echo "matrix[$leg]: $name is $installed, scripts/constraints-$leg.txt pins $version" >&2
      status=1
    fi
  done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/==/ /' "scripts/constraints-$leg.txt")
  return $status
}

python_of() {
  sed -n 's/^# python: *\([0-9][0-9.]*\).*/\1/p' "scripts/constraints-$1.txt" | head -n 1
}

run_leg() {
  local leg=$1 python
  python=$(find_python "$(python_of "$leg")") || return 1
  build_venv "$leg" "$python" || return 1
  check_pins "$leg" || return 1
  echo "matrix[$leg]: $(".venv-$leg/bin/python" -V), $(".venv-$leg/bin/python" -m pip list --format=freeze 2>/dev/null |
    grep -iE '^(django|channels|channels[-_]redis|daphne|twisted|autobahn|asgiref|redis)==' | tr '\n' ' ')"
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  STOMP_PUSH_REQUIRE_ALL=1 ".venv-$leg/bin/python" -m pytest -p no:cacheprovider -q -m "$MATRIX_MARKERS" \
    ${PYTEST_ARGS:-} "${MATRIX_TESTS[@]}"
}

legs=("$@")
if [ ${#legs[@]} -eq 0 ]; then legs=(oldest newest); fi
for leg in "${legs[@]}"; do
  if [ ! -f "scripts/constraints-$leg.txt" ] || [ -z "$(python_of "$leg")" ]; then
    echo "matrix: unknown leg '$leg' (no scripts/constraints-$leg.txt with a '# python: 3.X' line)" >&2
    exit 2
  fi
done

summary=()
failed=0
for leg in "${legs[@]}"; do
  started=$SECONDS
  if run_leg "$leg"; then result=passed; else result=FAILED; failed=1; fi
  summary+=("matrix[$leg]: $result in $((SECONDS - started)) s")
done
printf '%s\n' "${summary[@]}"
exit $failed
