"""Demo scores and segments for `make run`: the RFM pages and the segment builder show
something meaningful on first start instead of empty states."""

from __future__ import annotations

from segments.membership import create_segment
from segments.models import RfmLabel, RunTrigger, ScoringRun, Segment, SegmentKind
from segments.runs import execute_scoring_run, request_scoring_run

# Segment names are data, written in the language of the shops the demo stands for.
DEMO_SEGMENTS = [
    {
        "name": "首都圏のロイヤル顧客",
        "description": "埼玉・千葉・東京・神奈川の「チャンピオン」と「ロイヤル」の顧客。",
        "rules": {
            "op": "and",
            "conditions": [
                {"field": "prefecture", "op": "in", "value": ["11", "12", "13", "14"]},
                {
                    "field": "rfm_label",
                    "op": "in",
                    "value": [RfmLabel.CHAMPIONS.value, RfmLabel.LOYAL.value],
                },
            ],
        },
    },
    {
        "name": "離反しかけの優良顧客（メール可）",
        "description": "離反しかけの優良顧客のうち、メール配信に同意している人（掘り起こし用）。",
        "rules": {
            "op": "and",
            "conditions": [
                {
                    "field": "rfm_label",
                    "op": "in",
                    "value": [RfmLabel.AT_RISK.value, RfmLabel.CANNOT_LOSE.value],
                },
                {"field": "email_opt_in", "op": "is", "value": True},
            ],
        },
    },
    {
        "name": "上位20%の顧客",
        "description": "最新のスコアリングで売上上位2デシル（パレートの上位20%）。",
        "rules": {"op": "and", "conditions": [{"field": "top20", "op": "is", "value": True}]},
    },
]


def score_and_segment_demo_data(*, by=None) -> tuple[ScoringRun, list[Segment]]:
    """Score the freshly seeded customers in this process and create the demo segments that
    do not exist yet."""
    run = execute_scoring_run(
        run=request_scoring_run(trigger=RunTrigger.COMMAND, requested_by=by, enqueue=False)
    )
    created = []
    for demo in DEMO_SEGMENTS:
        if Segment.objects.filter(name=demo["name"]).exists():
            continue
        created.append(create_segment(kind=SegmentKind.DYNAMIC, created_by=by, **demo))
    return run, created
