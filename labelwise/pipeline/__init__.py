"""Use cases. Routes, tasks and CLI commands call these; these call models/, classify/ and integrations/.

Functions that take a ``Session`` never commit: the caller owns the transaction. Functions handed a
session factory own their (short) transactions.
"""

from labelwise.pipeline.classifying import (  # noqa: F401 - the public surface
    classify_now,
    decode_cursor,
    encode_cursor,
    get_job,
    jobs_finished,
    list_jobs,
    new_job_id,
    submit_and_enqueue,
    submit_job,
    wait_for_job,
)
from labelwise.pipeline.common import (  # noqa: F401 - the public surface
    counts,
    database_errors,
    estimated_jobs,
    open_counts,
    readiness,
)
from labelwise.pipeline.delivering import (  # noqa: F401 - the public surface
    Attempt,
    deliver,
    list_deliveries,
    replay_deliveries,
)
from labelwise.pipeline.integrating import (  # noqa: F401 - the public surface
    apply_integration,
    delete_integration,
    get_integration,
    list_integrations,
    rekey_integrations,
)
from labelwise.pipeline.labelling import (  # noqa: F401 - the public surface
    apply_label_set,
    delete_label_set,
    label_set_summaries,
    label_set_version,
    label_set_versions,
    rollback_label_set,
    version_view,
)
from labelwise.pipeline.learning import record_feedback  # noqa: F401 - the public surface
from labelwise.pipeline.operating import heartbeat, worker_check, worker_stopped  # noqa: F401 - the public surface
from labelwise.pipeline.receiving import receive_event  # noqa: F401 - the public surface
from labelwise.pipeline.views import job_view, to_result  # noqa: F401 - the public surface
from labelwise.pipeline.working import (  # noqa: F401 - the public surface
    Classified,
    Limits,
    Message,
    classify_batch,
    classify_message,
    fail_job,
)
