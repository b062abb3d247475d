"""The demo's reviewer (sfr_jax.review.simulate) against planted truth written by hand: what overlaps a
planted defect of its class is accepted, what lies mostly on one of another class relabelled, both moved to
where the defect is in view; the rest rejected, and what was missed added; the resolved events then equal
the planted truth (plus the rejected ones)."""
import json
import os

from sfr_jax.data.synthetic_video import Planted
from sfr_jax.review import record, simulate
from review_fixtures import write_reports


def test_review_against_planted_truth(tmp_path):
    folder = os.path.join(write_reports(str(tmp_path / "reports"), video=False), "seg1")
    # the fixture's events: 1 RB 1-3, 2 FO 5-7, 3 RB 9-11, 4 RB 13-15
    planted = [Planted("RB", 2.0, 4.0),  # event 1: right class -> accept, moved to 2-4
               Planted("XX", 5.5, 8.0),  # event 2 (FO 5-7) lies 1.5 of its 2 s on XX -> relabel to XX, moved
               Planted("XX", 12.0, 13.5),  # event 4 (RB 13-15) shares only 0.5 s with it -> reject; XX added
               Planted("FO", 17.0, 19.0)]  # missed -> add; event 3 overlaps nothing -> reject
    counts = simulate.review_against_truth(str(folder), planted)
    assert counts == {"accept": 1, "relabel": 1, "move": 2, "reject": 2, "add": 2}
    review = record.load(folder)
    events = json.load(open(os.path.join(folder, "events.json")))
    final = [(e["class"], e["start_s"], e["end_s"], e["verdict"]) for e in record.resolved(review, events)]
    # ends: the last instant in view, just before the planted (exclusive) end
    assert final == [("RB", 2.0, 3.999, "accepted"), ("XX", 5.5, 7.999, "relabelled"), ("RB", 9.0, 11.0, "rejected"),
                     ("RB", 13.0, 15.0, "rejected"), ("XX", 12.0, 13.499, "added"), ("FO", 17.0, 18.999, "added")]
    assert record.fully_reviewed(review)
    assert simulate.overlaps(0, 1, 1, 2) and not simulate.overlaps(0, 1, 1.01, 2)
