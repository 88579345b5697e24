"""Atomic outputs: every file and directory sqz writes is, at every instant, either the old one
or the new one, whole; after Ctrl-C, a crash or SIGKILL as well.

Single files
    ``write_bytes(path, data)``, ``write_text(path, text)``, or ``with replacing(path) as tmp:``
    for tools that write a path themselves (Keras' ``save``, matplotlib's ``savefig``). The data
    goes to a temporary file beside ``path`` (same directory, same suffix), is fsynced, then
    ``os.replace``\\ d onto ``path``.

Groups of files that must agree (a model and its sidecars)
    ``with replacing_group([a, b, c]) as tmps:`` writes every temporary first and replaces them
    one after the other with SIGINT and SIGTERM held back, so Ctrl-C cannot split the group.

Directories
    ``with output_directory(path) as stage:`` checks ``path`` up front, takes an advisory lock
    on it (``.<name>.sqz-lock`` beside it while the run lasts, removed when it ends; a second
    writer fails at once with :class:`~converter.errors.OutputBusyError`), cleans up what an
    interrupted earlier run left,
    and gives a staging directory beside ``path``. Everything is written into ``stage.path``;
    when the block ends without an exception, the staging directory is swapped into place in one
    rename (Linux ``renameat2(RENAME_EXCHANGE)``, macOS ``renamex_np(RENAME_SWAP)``), so readers
    see the complete old directory or the complete new one, never a mix, and files the old one
    had and the new one lacks are gone. An exception discards the staging directory and leaves
    ``path`` untouched. Where the swap is not available, two renames are used and the short gap
    between them (no ``path`` at all) is repaired by the next run or reader (:func:`recover`).

A hidden manifest (``.sqz-manifest.json``) lists the files of each directory sqz wrote. A
directory that holds files sqz did not write is never replaced: the user is told to move them.

Test hooks (environment): ``SQZ_TEST_CHECKPOINT_LOG=FILE`` appends the name of every write-phase
checkpoint to FILE; ``SQZ_TEST_INTERRUPT=N[:SIGNAL]`` sends the process SIGNAL (``INT`` by
default, or ``KILL``/``TERM``) at the N-th checkpoint; ``SQZ_TEST_NO_EXCHANGE=1`` forces the
two-rename fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .errors import InputFileError, OutputBusyError, UsageError

try:
    import fcntl
except ImportError:  # Windows: no flock; outputs stay atomic, only the lock is missing
    fcntl = None  # type: ignore[assignment]

MANIFEST = ".sqz-manifest.json"
_TAG = ".sqz-"  # every helper name beside an output is ".<name>.sqz-<kind>..."


# ---- test hooks -------------------------------------------------------------------------------

_checkpoints = 0


def checkpoint(label: str) -> None:
    """A numbered point of the write phase, where tests interrupt the process (module doc)."""
    global _checkpoints
    _checkpoints += 1
    log = os.environ.get("SQZ_TEST_CHECKPOINT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{_checkpoints} {label}\n")
    spec = os.environ.get("SQZ_TEST_INTERRUPT")
    if spec:
        n, _, sig = spec.partition(":")
        if int(n) == _checkpoints:
            # To this very thread, not the process: a process-directed signal may be taken by
            # another thread (TensorFlow's), so which step sees it would depend on scheduling.
            signal.pthread_kill(threading.get_ident(), getattr(signal, f"SIG{sig or 'INT'}"))


# ---- low-level helpers ------------------------------------------------------------------------

def _helper_name(final: Path, kind: str, suffix: str = "") -> Path:
    return final.with_name(f".{final.name}{_TAG}{kind}-{os.getpid()}-{secrets.token_hex(4)}"
                           f"{suffix}")


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath), directory=True)


@contextlib.contextmanager
def _signals_held(final: bool = False) -> Iterator[None]:
    """Holds SIGINT and SIGTERM back (they take effect right after) so that Ctrl-C cannot stop
    a swap half-way; SIGKILL cannot be held, which is what recover() is for.

    Blocking the signals covers this thread only; a signal for the process may go to another
    thread (a progress display, TensorFlow's) and Python would still run its handler here. So
    recording handlers are installed for the duration too, and what they or the mask caught is
    acted on when the swap is done.

    ``final``: this swap puts the run's last output in place. A Ctrl-C held back during it, or
    arriving later in the run (only its summary is left to print), no longer interrupts: the
    new output is complete, so reporting the run as interrupted (exit 130) would mislead. It is
    counted instead (:data:`late_interrupts`) and the tool says so (commands/common.py)."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None or sys.platform == "win32":
        yield
        return
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in held}
    old = block(signal.SIG_BLOCK, set(held))
    try:
        yield
    finally:
        for sig in set(signal.sigpending()) & set(held):  # consumed while still blocked
            if signal.sigtimedwait([sig], 0) is not None:
                caught.append(sig)
        block(signal.SIG_SETMASK, old)
        for sig in held:
            signal.signal(sig, previous[sig] if previous[sig] is not None else signal.SIG_DFL)
    if signal.SIGTERM in caught:
        signal.raise_signal(signal.SIGTERM)
    if final:
        _absorb_interrupts(caught.count(signal.SIGINT))
    elif signal.SIGINT in caught:
        signal.raise_signal(signal.SIGINT)  # as if it came now, through the usual handler


# Set by the CLI's SIGINT handler (commands/common.py) for the run under way. A library may
# catch the KeyboardInterrupt a Ctrl-C raises inside it (TensorFlow turns one in its data
# pipeline into the end of an epoch), and the run would go on to replace its output as if
# nothing had happened: every swap checks this first and stops the run instead.
interrupt_seen = False


def _stop_if_interrupted() -> None:
    if interrupt_seen:
        raise KeyboardInterrupt


# Ctrl-C presses that came once the run's final output was in place (see _signals_held).
late_interrupts = 0
_before_absorbing: object = None


def _late_interrupt(signum, frame) -> None:
    global late_interrupts
    late_interrupts += 1


def _absorb_interrupts(count: int) -> None:
    global _before_absorbing, late_interrupts
    late_interrupts += count
    if _before_absorbing is None:
        _before_absorbing = signal.signal(signal.SIGINT, _late_interrupt)


def end_of_run() -> int:
    """Called by the CLI handler when a tool returns: puts back the SIGINT handler that a final
    swap replaced and returns how many Ctrl-C came after the output was in place."""
    global _before_absorbing, late_interrupts
    count = late_interrupts
    if _before_absorbing is not None:
        signal.signal(signal.SIGINT, _before_absorbing)  # type: ignore[arg-type]
        _before_absorbing = None
    late_interrupts = 0
    return count


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two existing paths in one step; False where the system cannot."""
    if os.environ.get("SQZ_TEST_NO_EXCHANGE"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if hasattr(libc, "renameat2"):  # Linux, glibc >= 2.28
        rc = libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2)  # RENAME_EXCHANGE
    elif hasattr(libc, "renamex_np"):  # macOS
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), 2)  # RENAME_SWAP
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_temps(final: Path) -> Iterator[Path]:
    """Temporary files for ``final`` whose writer is no longer running."""
    prefix = f".{final.name}{_TAG}tmp-"
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return
    for p in entries:
        if p.name.startswith(prefix):
            pid = p.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                yield p


# ---- where outputs may go -----------------------------------------------------------------------

# Kernel interfaces, not storage: writing there fails in odd ways (EACCES, EINVAL, ENOENT for a
# lock file) or, worse, changes the system. /dev/shm is a real (memory) file system.
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
_REAL_UNDER_PSEUDO = ("/dev/shm",)


def check_output_location(path: str | Path, what: str) -> None:
    """UsageError, up front, for an output under /proc, /sys or /dev: no sqz output belongs
    there, and the failure would otherwise come late and unexplained."""
    real = os.path.realpath(Path(path).absolute())

    def under(root: str) -> bool:
        return real == root or real.startswith(root + "/")

    for root in _PSEUDO_ROOTS:
        if under(root) and not any(under(r) for r in _REAL_UNDER_PSEUDO):
            raise UsageError(f"{what} {path}: {root} is a kernel interface, not a place for "
                             f"files; give a {what} on a disk, e.g. in your project folder")


# ---- single files -----------------------------------------------------------------------------

def check_writable_file(path: str | Path, what: str) -> Path:
    """Up-front check for an output file named by option ``what``: creates its directory if
    needed and makes sure it can be written there. Raises InputFileError naming ``what``."""
    path = Path(path)
    check_output_location(path, what)
    if path.is_dir():
        raise InputFileError(f"{what} {path}: this is a directory; give a file name")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"{what} {path}: cannot create the directory {parent} "
                             f"({exc.strerror or exc}); choose another {what}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputFileError(f"{what} {path}: cannot write in {parent} (permission denied); "
                             f"choose another {what}")
    return path


@contextlib.contextmanager
def replacing(path: str | Path, *, bulk: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` with the same suffix; when the block ends without
    an exception the file there is fsynced and atomically replaces ``path``. On an exception the
    temporary file is removed and ``path`` is left as it was. ``bulk`` (for thousands of small
    files) skips the fsync and the search for temporaries of killed runs: the file is still
    whole or absent after a crash of the process, not necessarily after one of the machine."""
    with replacing_group([path], bulk=bulk) as (tmp,):
        yield tmp


@contextlib.contextmanager
def replacing_group(paths: Sequence[str | Path], *, bulk: bool = False,
                    last_output: bool = False) -> Iterator[list[Path]]:
    """Like :func:`replacing` for files that belong together: all temporaries are written
    first, then replaced in the order given with SIGINT/SIGTERM held back. ``last_output``:
    these are the run's last output (see :func:`_signals_held`)."""
    finals = [Path(p) for p in paths]
    fsync = not bulk
    for final in finals if not bulk else ():
        for stale in _stale_temps(final):
            _remove(stale)
    temps = [_helper_name(f, "tmp", "".join(f.suffixes[-1:])) for f in finals]
    try:
        yield temps
        for tmp, final in zip(temps, finals, strict=True):
            if not tmp.exists():
                raise FileNotFoundError(f"nothing was written for {final}")
            if fsync:
                _fsync_path(tmp)
            checkpoint(f"file staged {final.name}")
        _stop_if_interrupted()
        with _signals_held(final=last_output):
            _stop_if_interrupted()  # (one that came after the check above)
            for tmp, final in zip(temps, finals, strict=True):
                os.replace(tmp, final)
                checkpoint(f"file replaced {final.name}")
            if fsync:
                for parent in {f.parent for f in finals}:
                    _fsync_path(parent, directory=True)
    finally:
        for tmp in temps:
            if tmp.exists():
                _remove(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (old content or new, never a mix)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Atomically replace ``path`` with ``text``."""
    write_bytes(path, text.encode(encoding))


# ---- the lock ---------------------------------------------------------------------------------

def lock_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{_TAG}lock")


class OutputLock:
    """An advisory ``flock`` on ``.<name>.sqz-lock`` beside an output, held while the output is
    written and removed when it is released, so that nothing stays behind. The lock itself is
    released when the process ends, however it ends; a killed run leaves only the empty file,
    which the next run into the same output takes over and removes.

    Removing a lock file is safe only with a check: a second run may have opened the file
    before the first removed it and lock the removed file, while a third creates and locks a
    new one. So a run that gets the lock checks that the file it locked is still the one at
    the path, and tries again if it is not."""

    def __init__(self, final: Path, what: str) -> None:
        self.final = final
        self.what = what
        self.path = lock_path(final)
        self.fd: int | None = None

    def acquire(self, wait: bool = False) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:
                self.fd = fd
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = ""
                with contextlib.suppress(OSError):
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                os.close(fd)
                raise OutputBusyError(
                    f"{self.what} {self.final} is being written by another sqz run"
                    f"{f' ({holder})' if holder else ''}; wait for it to finish, or give this "
                    f"run another {self.what}") from None
            except BaseException:
                os.close(fd)
                raise
            if self._still_at_path(fd):
                break
            os.close(fd)  # locked a file its holder had removed: take the current one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {Path(sys.argv[0]).name}".encode(), 0)
        self.fd = fd

    def _still_at_path(self, fd: int) -> bool:
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (at_path.st_dev, at_path.st_ino)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # while still locked: see the class doc
            os.close(self.fd)  # closing drops the flock
            self.fd = None


@contextlib.contextmanager
def output_file_lock(path: str | Path, what: str) -> Iterator[Path]:
    """The lock of :func:`output_directory` for a tool whose output is a file and its sidecars
    (sqz-compress, sqz-train): taken before the slow work, so that a second run writing the
    same file fails at once with OutputBusyError instead of one result silently replacing the
    other; released (and its file removed) when the block ends."""
    given = Path(path)
    check_output_location(given, what)
    final = Path(os.path.realpath(given)) if given.is_symlink() else given.absolute()
    lock = OutputLock(final, what)
    try:
        lock.acquire(wait=False)
    except OSError as exc:  # e.g. a read-only or pseudo file system
        raise InputFileError(f"{what} {given}: cannot write beside it ({exc.strerror or exc}); "
                             f"choose another {what}") from None
    try:
        yield given
    finally:
        lock.release()


# ---- directories ------------------------------------------------------------------------------

def _leftovers(final: Path) -> list[Path]:
    prefixes = (f".{final.name}{_TAG}new-", f".{final.name}{_TAG}old-")
    try:
        return sorted(p for p in final.parent.iterdir() if p.name.startswith(prefixes))
    except OSError:
        return []


def recover(path: str | Path) -> None:
    """Repairs what an interrupted swap left beside ``path``: restores the previous directory if
    the run died between the two renames of the fallback, and removes staging and swapped-out
    directories. Does nothing while another run holds the lock."""
    final = Path(path).absolute()
    if not _leftovers(final) or not final.parent.is_dir():
        return
    lock = OutputLock(final, "output")
    try:
        lock.acquire(wait=False)
    except (OutputBusyError, OSError):
        return
    try:
        _recover_locked(final)
    finally:
        lock.release()


def _recover_locked(final: Path) -> None:
    leftovers = _leftovers(final)
    if not os.path.lexists(final):
        olds = [p for p in leftovers if f"{_TAG}old-" in p.name and p.is_dir()]
        if olds:
            os.rename(olds[-1], final)
            leftovers.remove(olds[-1])
    for p in leftovers:
        _remove(p)


def _manifest_files(root: Path, manifest: str | None = MANIFEST) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel != manifest:
                out.append(rel)
    return sorted(out)


def _foreign_files(final: Path, manifest: str | None, legacy_marker: str | None,
                   legacy_names: Iterable[str]) -> list[str] | None:
    """Files in an existing ``final`` that sqz did not write, or None when ``final`` is not an
    sqz output at all (and not empty)."""
    present = _manifest_files(final, manifest)
    if not present:
        return []
    if manifest and (final / manifest).is_file():
        try:
            listed = set(json.loads((final / manifest).read_text())["files"])
        except (ValueError, KeyError, TypeError, OSError):
            listed = set()
        return [f for f in present if f not in listed]
    if legacy_marker and (final / legacy_marker).is_file():
        known = set(legacy_names)
        return [f for f in present if f not in known]
    return None


class Staging:
    """The directory being built; becomes ``final`` when the ``output_directory`` block ends."""

    def __init__(self, final: Path, path: Path, manifest: str | None = MANIFEST,
                 last_output: bool = False) -> None:
        self.final = final
        self.last_output = last_output
        self.path = path
        self.manifest = manifest

    def file(self, name: str) -> Path:
        """The staging path of output file ``name`` (subdirectories are created), for tools that
        write a path themselves."""
        p = self.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.file(name)
        p.write_bytes(data)
        checkpoint(f"staged {name}")
        return p

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def commit(self) -> None:
        """Swaps the staging directory into place (called by ``output_directory``)."""
        if self.manifest:
            (self.path / self.manifest).write_text(json.dumps(
                {"tool": "sqz", "files": _manifest_files(self.path, self.manifest)},
                indent=1) + "\n")
        _fsync_tree(self.path)
        checkpoint("staging complete")
        final = self.final
        swapped_out: Path | None = None
        _stop_if_interrupted()
        try:
            with _signals_held(final=self.last_output):
                _stop_if_interrupted()
                if os.path.lexists(final):
                    if _exchange(self.path, final):
                        swapped_out = self.path  # now holds the previous directory
                        checkpoint("swapped")
                    else:
                        swapped_out = _helper_name(final, "old")
                        os.rename(final, swapped_out)
                        checkpoint("previous moved aside")
                        os.rename(self.path, final)
                        checkpoint("swapped")
                else:
                    os.rename(self.path, final)
                    checkpoint("moved into place")
                _fsync_path(final.parent, directory=True)
        finally:
            if swapped_out is not None and swapped_out.exists():
                if os.path.lexists(final):
                    _remove(swapped_out)
                    checkpoint("previous removed")
                else:  # the second rename failed: put the previous directory back
                    os.rename(swapped_out, final)


@contextlib.contextmanager
def output_directory(path: str | Path, *, what: str = "--out", legacy_marker: str | None = None,
                     legacy_names: Iterable[str] = (), wait: bool = False,
                     manifest: str | None = MANIFEST, last_output: bool = False
                     ) -> Iterator[Staging]:
    """Builds a whole output directory and swaps it into place atomically (module doc).

    Checks ``path`` before anything else so that a bad ``what`` option fails before any slow
    work: it must be a directory (or not exist), sqz's own output or empty, and its parent must
    be writable. Takes the lock (``wait``: block until it is free, else fail at once with
    OutputBusyError). ``legacy_marker``/``legacy_names`` recognise directories written by sqz
    versions that kept no manifest. ``manifest=None`` writes none, for outputs that list their
    files themselves (pass that list as ``legacy_names`` and its file as ``legacy_marker``).
    ``last_output``: nothing but a summary follows the swap (see :func:`_signals_held`)."""
    given = Path(path)
    check_output_location(given, what)
    final = Path(os.path.realpath(given)) if given.is_symlink() else given.absolute()
    if os.path.lexists(final) and not final.is_dir():
        raise InputFileError(f"{what} {given}: exists and is not a directory; choose another "
                             f"{what}")
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"{what} {given}: cannot create the directory {parent} "
                             f"({exc.strerror or exc}); choose another {what}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputFileError(f"{what} {given}: cannot write in {parent} (permission denied); "
                             f"choose another {what}")
    lock = OutputLock(final, what)
    try:
        lock.acquire(wait=wait)
    except OSError as exc:  # the lock file cannot be made: a read-only or odd file system
        raise InputFileError(f"{what} {given}: cannot write beside it in {parent} "
                             f"({exc.strerror or exc}); choose another {what}") from None
    try:
        _recover_locked(final)
        if final.is_dir():
            foreign = _foreign_files(final, manifest, legacy_marker, legacy_names)
            if foreign is None:
                present = sorted(p.name + ("/" if p.is_dir() else "") for p in final.iterdir())
                shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
                raise UsageError(
                    f"{what} {given} holds files that sqz did not write ({shown}); sqz "
                    f"replaces its output directory as a whole and would delete them: move "
                    f"them elsewhere or give a new or empty {what}, or one an earlier sqz run "
                    f"wrote")
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise UsageError(
                    f"{what} {given} holds files that sqz did not write ({shown}); sqz replaces "
                    f"the directory as a whole and would delete them: move them elsewhere or "
                    f"give another {what}")
        stage = Staging(final, _helper_name(final, "new"), manifest, last_output)
        stage.path.mkdir()
        try:
            yield stage
            stage.commit()
        finally:
            if stage.path.exists():
                _remove(stage.path)
    finally:
        lock.release()
