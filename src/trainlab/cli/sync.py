"""``trainlab sync [FILES...]``: send what a run could not send while its store was away."""

from __future__ import annotations

from pathlib import Path

from trainlab.config.errors import UsageError

HELP = """usage: trainlab sync [FILE ...] [--uri URI]

When the tracking store is unreachable at the end of a run, the metrics it still held are
written to outputs/unsent/<run id>-<pid>.jsonl and the run prints this command. `trainlab
sync` sends every point not yet in the store (points already there are skipped, so running it
twice is harmless), sets the run's final status if that failed too, and renames each file it
finished to *.synced. Without FILE it syncs every file in outputs/unsent/.
--uri sends to another store than the one recorded in the file (e.g. a moved server)."""


def parse(args: list[str]) -> tuple[list[Path], str | None]:
    files: list[Path] = []
    uri: str | None = None
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--uri":
            if not rest:
                raise UsageError("--uri needs a value, e.g. --uri http://127.0.0.1:5000")
            uri = rest.pop(0)
        elif arg.startswith("--uri="):
            uri = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg!r}; see `trainlab sync --help`")
        else:
            files.append(Path(arg))
    return files, uri


def run(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    from trainlab.tracking.replay import UNSENT_DIR, read_replay_file, sync

    files, uri = parse(args)
    if not files:
        files = sorted(UNSENT_DIR.glob("*.jsonl"))
        if not files:
            print(f"Nothing to sync: {UNSENT_DIR}/ holds no unsent metrics.")
            return 0
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}; see `ls {UNSENT_DIR}`")
    failed = 0
    for path in files:
        try:
            replay = read_replay_file(path)
        except ValueError as error:
            raise UsageError(str(error)) from None
        try:
            sent, skipped = sync(replay, uri)
        except Exception as error:  # the store is still away: keep the file for later
            failed += 1
            print(
                f"{path}: could not reach {uri or replay.uri} "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); kept for later"
            )
            continue
        done = path.with_suffix(".synced")
        path.replace(done)
        status = f", status {replay.status}" if replay.status else ""
        print(
            f"{path}: run {replay.run_id}: {sent} points sent, {skipped} already in the "
            f"store{status}; file renamed to {done.name}"
        )
    return 1 if failed else 0
