"""Importers and exporters: outside preference data <-> the pair record of DESIGN §2.

Importers (`gramr2 data import --format …`) turn one source row into zero or more pair records:
- `pairs`: prompt/chosen/rejected (TRL, RewardBench convention); the prompt may be a message list
  (`prompt` or `messages`), chosen/rejected may be message lists (the last assistant turn is the response).
- `helpsteer3`: context/response1/response2/overall_preference (−3..3, negative = response1 better, 0 = tie → skipped).
- `rmbench`: chosen[3] × rejected[3] → 9 pairs with the style cell (i, j) and RM-Bench's easy/normal/hard.
- `judgebench`: question/response_A/response_B/label ("A>B" | "B>A"), or prompt/chosen/rejected + source.
- `rewardbench`: prompt/chosen/rejected/subset.
Every importer yields the pair in its *natural* order (chosen first; response1/response_A first where the source
has an order and a label); `order` then swaps it by a seeded hash of the pair (`random`, the default, so a
prompt/chosen/rejected file does not give every label A: a judge that always answers A would score 100% on it),
keeps it (`fixed`), or writes both (`both`, linked by `meta.pair_group`). Format detection (`auto`) recognises
JudgeBench's released files (question/response_A/response_B, or prompt/chosen/rejected with pair_id and source),
RM-Bench (chosen/rejected lists of 3) and RewardBench (a `subset` column). Ids are content hashes (records.make_id), so they do not depend
on batch boundaries, shards or the order rows arrive in.

The import stage itself (`gramr2 data import`) is `stages/data_import.py`.

Exporters (`gramr2 data export`): `pairs` (prompt/chosen/rejected for TRL/OpenRLHF reward/DPO trainers) and
`alpaca` (instruction/input/output for LLaMA-Factory SFT on the judge prompt and the judgment text).
"""

from .convert import PLACEMENTS, ImportConfig, convert, flip, swap_rationale, to_records
from .exporters import EXPORTERS, export, export_alpaca, export_pairs
from .importers import (
    FORMATS,
    IMPORTERS,
    JUDGEBENCH_CATEGORIES,
    JUDGEBENCH_LABELS,
    REWARDBENCH_SECTIONS,
    RMBENCH_STYLES,
    detect,
    import_helpsteer3,
    import_judgebench,
    import_pairs,
    import_rewardbench,
    import_rmbench,
    rmbench_difficulty,
)
from .rows import Skip, render_messages

__all__ = ["EXPORTERS", "FORMATS", "IMPORTERS", "JUDGEBENCH_CATEGORIES", "JUDGEBENCH_LABELS", "PLACEMENTS",
           "REWARDBENCH_SECTIONS", "RMBENCH_STYLES", "ImportConfig", "Skip", "convert", "detect", "export",
           "export_alpaca", "export_pairs", "flip", "import_helpsteer3", "import_judgebench", "import_pairs",
           "import_rewardbench", "import_rmbench", "render_messages", "rmbench_difficulty", "swap_rationale",
           "to_records"]
