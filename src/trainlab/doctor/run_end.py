"""The diagnosis every run ends with: read the run back from the store (so it is exactly what
``trainlab diagnose RUN_ID`` would say), log ``diagnosis.json`` and the tag
``trainlab.diagnosis``, and hand back the diagnosis for the summary."""

from __future__ import annotations

import logging
from typing import Any

from trainlab.doctor.findings import Diagnosis

log = logging.getLogger(__name__)
DIAGNOSIS_ARTIFACT = "diagnosis.json"
DIAGNOSIS_TAG = "trainlab.diagnosis"


def diagnose_ending_run(
    tracker: Any, gradients: dict[str, Any] | None, status: str, error: str = ""
) -> Diagnosis | None:
    """Diagnose the open run of ``tracker`` (an MLflow tracker) before it is closed. Never
    raises: a diagnosis that cannot be made must not cost the run its status."""
    uri = getattr(tracker, "uri", None)
    if not uri:
        return None
    try:
        from trainlab.doctor import RunHistory, diagnose
        from trainlab.doctor.report import to_json
        from trainlab.tracking.mlflow_tracker import _fail_fast
        from trainlab.tracking.store import make_client

        tracker.flush()  # every metric point in the store before it is read back
        with _fail_fast():  # a store that is down: one quick try, no minutes of retries
            history = RunHistory.from_store(
                make_client(uri), tracker.run_id, gradients=gradients, status=status, error=error
            )
        diagnosis = diagnose(history)
        tracker.log_text(to_json(diagnosis) + "\n", DIAGNOSIS_ARTIFACT)
        tracker.set_tags({DIAGNOSIS_TAG: diagnosis.primary})
        return diagnosis
    except Exception as failure:  # the run itself is fine; say why there is no diagnosis
        log.warning(
            "no diagnosis for run %s: %s: %s", tracker.run_id, type(failure).__name__, failure
        )
        return None
