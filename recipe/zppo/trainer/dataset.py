"""verl's ``RLHFDataset`` plus what ZPPO needs from the training data (``data.custom_cls``).

- Every item carries ``zppo_question_id`` (``extra_info.question_id``, else ``"row-<index>"``) and ``zppo_kind``
  ("original"), which verl stores with each trajectory, so the trainer can group rollouts by question and kind.
- Offline teacher responses stay OUT of the items (and so out of every step's TransferQueue traffic): they are
  read, when a hard question needs them, from a side table keyed by question id.
- ``item_for(question_id, kind, messages)`` builds an item for a replayed question or for a BCQ/NCQ prompt (new
  messages, same row otherwise: images, ground truth, data source) through verl's own ``__getitem__``.

Teacher-response fields (per row, inside ``extra_info``; see data_prep/ and README):
- ``teacher_responses``: list[str], full responses of the teacher (reasoning included, in the answer format);
- ``teacher_correct``: list[bool], same length, whether each is correct. Optional: when absent (or null) the
  project's reward function scores the responses against the row's ground truth the first time they are needed.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from verl.utils.dataset.rl_dataset import RLHFDataset

from ..algo.step import KIND_ORIGINAL

logger = logging.getLogger(__name__)

TEACHER_RESPONSES_KEY = "teacher_responses"
TEACHER_CORRECT_KEY = "teacher_correct"
QUESTION_ID_KEY = "question_id"


def _struct_child(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray | None:
    if not pa.types.is_struct(column.type) or column.type.get_field_index(name) < 0:
        return None
    return pc.struct_field(column, name)


class ZPPODataset(RLHFDataset):
    """RLHF dataset with question ids, a teacher-response side table and reformulated items."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .preflight import check_image_patch_size

        check_image_patch_size(self.image_patch_size, self.processor)  # the rollout's patch size, or refuse
        self._build_question_table()
        self._teacher_correct_cache: dict[int, list[bool]] = {}

    # ------------------------------------------------------------------ question table

    def _build_question_table(self) -> None:
        """Read the question ids and teacher columns once, as Arrow arrays (no per-row Python objects)."""
        frame = self.dataframe
        if getattr(frame, "_indices", None) is not None:  # after select/filter: materialise the row order
            frame = frame.flatten_indices()
            self.dataframe = frame
        table = frame.data.table if hasattr(frame.data, "table") else frame.data
        extra = table.column("extra_info") if "extra_info" in table.column_names else None
        question_ids = _struct_child(extra, QUESTION_ID_KEY) if extra is not None else None
        if question_ids is not None and question_ids.null_count == 0:
            ids = [str(x) for x in question_ids.to_pylist()]
        else:
            indices = _struct_child(extra, "index") if extra is not None else None
            ids = [f"row-{x}" for x in (indices.to_pylist() if indices is not None else range(len(frame)))]
        self.question_ids: list[str] = ids
        self.row_of_question: dict[str, int] = {}
        for row, qid in enumerate(ids):
            self.row_of_question.setdefault(qid, row)
        if len(self.row_of_question) != len(ids):
            logger.warning("%d rows share a question id with an earlier row; replay uses the first of each",
                           len(ids) - len(self.row_of_question))
        self._teacher_texts = _struct_child(extra, TEACHER_RESPONSES_KEY) if extra is not None else None
        self._teacher_flags = _struct_child(extra, TEACHER_CORRECT_KEY) if extra is not None else None
        digest = hashlib.sha256()
        for qid in ids:
            digest.update(qid.encode())
            digest.update(b"\0")
        # Checked on resume: a buffer of question ids only makes sense with the data it was built on.
        self.fingerprint = f"{len(ids)}:{digest.hexdigest()[:16]}"

    # ------------------------------------------------------------------ items

    def __getitem__(self, item):
        row = super().__getitem__(item)
        return self._finish_item(row, self.question_ids[item], KIND_ORIGINAL)

    @staticmethod
    def _finish_item(row: dict, question_id: str, kind: str) -> dict:
        extra = dict(row.get("extra_info") or {})
        extra.pop(TEACHER_RESPONSES_KEY, None)
        extra.pop(TEACHER_CORRECT_KEY, None)
        # The reward function receives extra_info: the prompt kind lets a custom reward tell them apart.
        extra["zppo_kind"] = kind
        row["extra_info"] = extra
        row["zppo_question_id"] = question_id
        row["zppo_kind"] = kind
        return row

    def item_for(self, question_id: str, kind: str, messages: list[dict] | None = None) -> dict:
        """An item for ``question_id`` as verl's dataset builds it, with ``messages`` as its prompt if given."""
        position = self.row_of_question[question_id]
        row = dict(self.dataframe[position])
        if messages is not None:
            row[self.prompt_key] = messages
        # Reuse verl's (or a subclass's) __getitem__ on a one-row view, so images, raw_prompt and every other
        # field are made exactly as for an ordinary item.
        view = copy.copy(self)
        view.dataframe = [row]
        item = RLHFDataset.__getitem__(view, 0)
        return self._finish_item(item, question_id, kind)

    def original_messages(self, question_id: str) -> list[dict]:
        position = self.row_of_question[question_id]
        return list(self.dataframe[position][self.prompt_key])

    def row_of(self, question_id: str) -> dict:
        return self.dataframe[self.row_of_question[question_id]]

    def images_of(self, question_id: str) -> list:
        return list(self.row_of(question_id).get(self.image_key) or [])

    def ground_truth(self, question_id: str) -> Any:
        position = self.row_of_question[question_id]
        reward_model = self.dataframe[position].get("reward_model") or {}
        return reward_model.get("ground_truth")

    # ------------------------------------------------------------------ teacher side table

    def teacher_responses(
        self, question_id: str, score: Callable[[str, dict], bool] | None = None
    ) -> list[tuple[str, bool]]:
        """Stored teacher responses of a question with their correctness: the stored flags, else those scored at an
        earlier step, else scored now with ``score``."""
        if self._teacher_texts is None or question_id not in self.row_of_question:
            return []
        position = self.row_of_question[question_id]
        texts = [str(text) for text in (self._teacher_texts[position].as_py() or [])]
        if not texts:
            return []
        flags = self._teacher_flags[position].as_py() if self._teacher_flags is not None else None
        if flags is None or len(flags) != len(texts):
            flags = self._teacher_correct_cache.get(position)
        if flags is None:
            if score is None:
                raise ValueError(
                    f"row {position} (question {question_id}): extra_info.{TEACHER_RESPONSES_KEY} has no matching "
                    f"extra_info.{TEACHER_CORRECT_KEY} and no scorer was given"
                )
            row = self.dataframe[position]
            flags = self._teacher_correct_cache[position] = [bool(score(text, row)) for text in texts]
        return [(text, bool(flag)) for text, flag in zip(texts, flags)]
