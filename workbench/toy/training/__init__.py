"""The teaching model's training recipe (`python -m workbench.toy train`): codec, then decoder.

Kept apart from `workbench.toy`, whose assets (weights, synthesiser, judge) the runtime loads."""
