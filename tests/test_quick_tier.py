"""The quick tier (`./scripts/test --quick`): engine tests are marked and left out, and cannot slip in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.markers import program_marker

ROOT = Path(__file__).resolve().parents[1]


def collected(*args: str) -> list[str]:
    """Node ids pytest collects from the suite with `args` (a separate process, collection only)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 5), out.stdout + out.stderr  # 5: nothing collected
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.slow  # runs pytest itself (collection, seconds)
def test_quick_leaves_out_tests_on_engine_fixtures_parameters_and_module_markers() -> None:
    files = ["tests/test_dashboard_store.py", "tests/test_broker_acl.py"]
    everything = collected(*files)
    quick = collected("--quick", *files)
    # The store's tests run on a "postgres" backend too: marked from the parameter, left out.
    assert any("[postgres]" in t for t in everything)
    assert not any("[postgres]" in t for t in quick)
    assert any("[sqlite]" in t for t in quick)
    # test_broker_acl's module carries `broker`: none of it runs in the quick tier.
    assert any("test_broker_acl.py" in t for t in everything)
    assert not any("test_broker_acl.py" in t for t in quick)
    # Tests that need nothing stay.
    assert "tests/test_dashboard_store.py::test_new_file_gets_the_schema_in_wal_mode" in quick


@pytest.mark.slow  # runs pytest itself (collection, seconds)
def test_a_marker_expression_sees_the_markers_set_from_fixtures() -> None:
    only_pg = collected("-m", "postgres", "tests/test_dashboard_store.py")
    assert only_pg and all("[postgres]" in t for t in only_pg)


@pytest.mark.parametrize(("argv", "marker"), [
    (["/usr/sbin/mosquitto", "-c", "x.conf"], "broker"),
    (["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/initdb", "-D", "d"], "postgres"),
    (["/usr/lib/postgresql/15/bin/pg_ctl", "start"], "postgres"),
    (["nats-server", "-c", "n.conf"], "cluster"),
    (["/usr/sbin/nginx", "-c", "n.conf"], "nginx"),
    ("/venv/lib/playwright/driver/node run-driver", "browser"),
    ([sys.executable, "-m", "chot", "dashboard", "init"], None),
    ([sys.executable, "-m", "pytest", "-m", "postgres"], None),  # an argument, not the program
    (["/usr/bin/mosquitto_passwd", "-b", "/tmp/mosquitto/passwd", "u", "p"], None),
])
def test_program_marker_names_the_engine(argv: list[str] | str, marker: str | None) -> None:
    assert program_marker(argv) == marker


def test_an_unmarked_test_that_starts_an_engine_fails_with_the_marker_to_add(tmp_path: Path) -> None:
    # The guard refuses before anything is started, so the program need not exist.
    with pytest.raises(RuntimeError, match=r"pytest\.mark\.broker"):
        subprocess.Popen([str(tmp_path / "mosquitto"), "-c", "none.conf"])


@pytest.mark.broker
def test_a_marked_test_may_start_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):  # past the guard: the (missing) program itself
        subprocess.Popen([str(tmp_path / "mosquitto"), "-c", "none.conf"])


@pytest.fixture
def stops_an_engine_at_teardown(tmp_path: Path) -> Iterator[None]:
    yield
    # Session fixtures (the PostgreSQL cluster) stop in whichever test's teardown comes last.
    with pytest.raises(FileNotFoundError):  # past the guard: the (missing) program itself
        subprocess.Popen([str(tmp_path / "pg_ctl"), "stop"])


def test_a_teardown_may_stop_an_engine(stops_an_engine_at_teardown: None) -> None:
    pass
