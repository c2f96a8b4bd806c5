"""A study's results table: one JSON line per finished run, under `experiments/results/<study>.jsonl`.

Lines are appended and fsynced one run at a time; a line cut by a kill is dropped on the next start; a
run's id is derived from its line (`study.record_id`), never stored.
"""
import glob
import json
import os
from typing import Dict, List, Optional

from experiments import study as study_lib
from settings import configs

RESULTS_DIR = os.path.join(configs.PROJECT_ROOT, "experiments", "results")


def drop_unfinished_tail(path: str) -> None:
    """Cuts a last line left without its newline by a kill mid-write (that run is redone)."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        content = f.read()
        if content and not content.endswith(b"\n"):
            f.truncate(content.rfind(b"\n") + 1)
            print(f"[study] dropped an unfinished last line of {path}", flush=True)


def read(path: str) -> Dict[str, Dict]:
    """Finished runs by id."""
    done = {}
    if not os.path.exists(path):
        return done
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                done[study_lib.record_id(record)] = record
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON record") from None
            except (KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a study run's record (no {error})") from None
    return done


def append(path: str, record: Dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def table_path(study: study_lib.Study, results_dir: str, source: Optional[str]) -> str:
    suffix = "" if source is None else "-" + os.path.splitext(os.path.basename(source))[0]
    return os.path.join(results_dir, f"{study.name}{suffix}.jsonl")


def other_tables(results_dir: str, own: str) -> Dict[str, List[Dict]]:
    """Run id -> every record of that run in the other tables under `results_dir` (a run trained for one study
    and copied into others, or trained by older code and kept by a table not rerun since)."""
    found: Dict[str, List[Dict]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.jsonl"))):
        if os.path.abspath(path) != os.path.abspath(own):
            for run_id, record in read(path).items():
                found.setdefault(run_id, []).append(record)
    return found
