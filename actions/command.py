"""Running a runbook's `command` step: an argv list, no shell, an allow-listed program, bounded in time and output.

- Each argv item is rendered on its own and passed as exactly one argument: `; rm -rf /` in a label is an
  inert string, never shell syntax.
- The program (argv[0]) must resolve to one of `actions_allowed_commands` (compared as real paths).
- The environment is `PATH` and `LANG` plus what the step declares; the worker's own environment (and its
  secrets) is not inherited.
- On timeout the whole process group is killed. stdout and stderr are kept up to a cap each.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass

from schemas.errors import ActionError, Reason

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class CommandRefused(ActionError, ValueError):
    """A command Firebreak will not run; the message names the program and the fix.
    Reason: refused_by_policy (not retried)."""

    reason = Reason.refused_by_policy


def _real(program: str) -> str | None:
    found = shutil.which(program, path=SAFE_PATH) if "/" not in program else program
    return os.path.realpath(found) if found and os.path.isfile(found) else None


@dataclass(frozen=True)
class CommandPolicy:
    allowed: frozenset[str]  # real paths

    @classmethod
    def parse(cls, entries: list[str]) -> CommandPolicy:
        return cls(frozenset(p for e in entries if (p := _real(e)) is not None))

    def resolve(self, program: str) -> str:
        real = _real(program)
        if real is None:
            raise CommandRefused(f"program {program!r} is not found on {SAFE_PATH}; give its absolute path")
        if real not in self.allowed:
            raise CommandRefused(
                f"program {program!r} ({real}) is not on the allow-list; "
                "add it to FIREBREAK_ACTIONS_ALLOWED_COMMANDS if runbooks may run it"
            )
        return real


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    kept = bytearray()
    dropped = False
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        dropped = dropped or len(chunk) > room
    return bytes(kept), dropped


async def run_command(
    program: str, args: list[str], *, env: dict[str, str], cwd: str | None, timeout: float, max_output_bytes: int
) -> CommandResult:
    """Run `program` (already resolved by CommandPolicy) with `args`; never through a shell."""
    if any("\x00" in part for part in (program, *args, *env.keys(), *env.values())):
        raise CommandRefused(
            "an argument or environment value contains a NUL character; it cannot be passed to a program"
        )
    full_env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", **env}
    workdir = cwd or tempfile.gettempdir()
    if not os.path.isdir(workdir):
        raise CommandRefused(f"cwd {workdir!r} is not a directory")
    process = await asyncio.create_subprocess_exec(
        program,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        cwd=workdir,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    readers = asyncio.ensure_future(
        asyncio.gather(_read_capped(process.stdout, max_output_bytes), _read_capped(process.stderr, max_output_bytes))
    )
    timed_out = False
    code: int | None
    try:
        async with asyncio.timeout(timeout):
            code = await process.wait()
            (out, out_cut), (err, err_cut) = await asyncio.shield(readers)
    except TimeoutError:
        timed_out, code = True, None
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await process.wait()
        (out, out_cut), (err, err_cut) = await readers
    return CommandResult(
        code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), out_cut or err_cut, timed_out
    )
