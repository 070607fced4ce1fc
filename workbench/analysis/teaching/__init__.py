"""The teaching model's evaluation protocol, beside the analysis it uses: `evaluate` (judge, codec,
generation, probes, steering verdicts; the command is ``python -m workbench.toy evaluate``) and `concepts`
(teaching model v2's probe profile, concept by concept), `prompt_following` (whether the model's generations
follow each factor word). The model itself lives in `workbench.toy`."""
