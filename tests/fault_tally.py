"""A pytest plugin that counts what the fault suite did and says so after the test run.

Tests take the session-wide `fault_tally` fixture and call `fault_tally.fault(kind)` for each
fault they have injected and seen take effect (a process killed, a file corrupted) and
`fault_tally.bad_input(kind)` for each generated bad input they have run. The terminal summary
then prints one line, only when such tests ran, e.g.

    fault suite: 9 faults injected (3 SIGKILL mid-step, ...), 312 bad inputs tried (...),
    all failed cleanly, nothing lost

"all failed cleanly, nothing lost" is printed only if every test that used the fixture passed:
the tests assert the clean failures and the intact files, so a failed assertion shows up here.
"""

from collections import Counter

import pytest


class Tally:
    def __init__(self):
        self.faults: Counter[str] = Counter()
        self.bad_inputs: Counter[str] = Counter()
        self.tests = 0
        self.failed: list[str] = []

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def bad_input(self, kind: str) -> None:
        self.bad_inputs[kind] += 1

    def summary(self) -> str:
        def listed(counts: Counter) -> str:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            return f" ({kinds})" if kinds else ""

        line = (f"fault suite: {self.faults.total()} faults injected{listed(self.faults)}, "
                f"{self.bad_inputs.total()} bad inputs tried{listed(self.bad_inputs)}, ")
        if self.failed:
            return line + f"{len(self.failed)} of {self.tests} fault tests FAILED (see above)"
        return line + "all failed cleanly, nothing lost"


_TALLY = pytest.StashKey[Tally]()


def pytest_configure(config):
    config.stash[_TALLY] = Tally()


@pytest.fixture(scope="session")
def fault_tally(request) -> Tally:
    return request.config.stash[_TALLY]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if "fault_tally" in getattr(item, "fixturenames", ()):
        tally = item.config.stash[_TALLY]
        tally.tests += report.when == "call"
        if report.failed and item.nodeid not in tally.failed:
            tally.failed.append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tally = config.stash[_TALLY]
    if tally.tests:
        terminalreporter.write_line(tally.summary())
