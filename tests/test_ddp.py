"""Two-process DDP on CPU: it trains, the ranks stay in sync, they see disjoint data, and
validation scores every utterance once."""

import json
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_ddp_trains_on_disjoint_data(tiny_corpus, tmp_path):
    manifest = tiny_corpus / "manifest.jsonl"
    val = tmp_path / "val.jsonl"  # 4 utterances in 3 batches: one rank validates one more
    lines = manifest.read_text().splitlines(keepends=True)[:4]
    val.write_text("".join(line.replace('"wav/', f'"{tiny_corpus}/wav/') for line in lines))
    subprocess.run(
        [sys.executable, str(WORKER), str(manifest), str(val), str(tmp_path)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    for epoch in ranks[0]["indices"]:
        seen0, seen1 = ranks[0]["indices"][epoch], ranks[1]["indices"][epoch]
        assert seen0 and seen1 and not set(seen0) & set(seen1), f"epoch {epoch} overlaps"
    assert len(ranks[0]["losses"]) == len(ranks[1]["losses"])  # same step count
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # gradients were all-reduced
    # Validation scores each utterance once (none repeated to even out the ranks), and the
    # ranks agree on the result, reduced at the epoch's end.
    assert sorted(ranks[0]["validated"] + ranks[1]["validated"]) == [0, 1, 2, 3]
    assert ranks[0]["val_wer"] == ranks[1]["val_wer"]
    for r in ranks:
        first, last = r["losses"][:3], r["losses"][-3:]
        assert sum(last) < 0.5 * sum(first), "training loss should fall"
