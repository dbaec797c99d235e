"""Scores a generation sweep can add to its rows: `score="judge"` reads each embedded-model picture with the toy
judge (labkit.toy.judge, which shares no code with the drawing side) against what its prompt asks."""


def judge_score(image, params) -> dict:
    """{"adherence": share of the attributes the prompt names that the picture gets right (0-1), "all_right": 1
    when every one is right, else 0}."""
    from ..toy.evaluate import wanted
    from ..toy.judge import score

    checks = score(image, wanted(params.prompt))
    if not checks:
        return {"adherence": None, "all_right": None}
    right = sum(checks.values())
    return {"adherence": right / len(checks), "all_right": int(right == len(checks))}
