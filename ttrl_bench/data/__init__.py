"""Questions: a task's rows (builtin generator, local file or hub) turned into ``Question``s."""
from ttrl_bench.data.questions import data_fingerprint, load_questions

__all__ = ["data_fingerprint", "load_questions"]
