"""Feature discovery: sparse autoencoders on the residual stream, their labels, and steering with them.

- `sae`: `SparseAutoencoder` (TopK or ReLU), saved and loaded in SAELens's layout (cfg.json + safetensors);
- `training`: `train_sae(stream, TrainConfig(...))` on a `workbench.data.frames.FrameStream` (resumable);
- `metrics`: explained variance, L0, dead / dense fractions, the spliced loss (through nnsight);
- `labelling`: `label_features` -> frequencies, top clips and spans, AUROC / correlation per label column,
  automatic labels, a searchable `FeatureTable`;
- `steering`: feature steering measured with the genre judge; `report`: the whole protocol
  (``python -m workbench.features report --json PATH``).

Example (a tiny store, a tiny SAE):

    >>> import numpy as np, tempfile
    >>> from workbench.data.store import ActivationStore, StoreIdentity
    >>> from workbench.analysis.features import FrameStream, TrainConfig, train_sae, label_features
    >>> identity = StoreIdentity("m", "k", [("resid", 0)], per_step_keys=[("resid", 0)])
    >>> s = ActivationStore.create(tempfile.mkdtemp(), identity)
    >>> rng = np.random.default_rng(0)
    >>> s.append({("resid", 0): np.zeros((6, 8))}, [{"id": str(i), "label": "ab"[i % 2]} for i in range(6)],
    ...          steps={("resid", 0): [rng.normal(size=(20, 8)) + 3 * (i % 2) for i in range(6)]})
    >>> sae = train_sae(FrameStream(s, "resid", 0, batch_size=32), TrainConfig(d_sae=16, k=4, epochs=2),
    ...                 progress=False).sae
    >>> labels = label_features(sae, FrameStream(s, "resid", 0))
    >>> len(labels.table), labels.categorical
    (16, ['label'])
"""
from workbench.analysis.features.labelling import FeatureLabels, FeatureTable, auroc, label_columns, label_features
from workbench.analysis.features.metrics import codes_of_rows, sae_metrics, spliced_loss
from workbench.analysis.features.sae import SparseAutoencoder, read_sparsity
from workbench.analysis.features.steering import feature_steering, steer_summary
from workbench.analysis.features.training import TrainConfig, TrainResult, TrainRun, train_sae
from workbench.data.frames import FrameBatch, FrameStream

__all__ = ["FeatureLabels", "FeatureTable", "FrameBatch", "FrameStream", "SparseAutoencoder", "TrainConfig",
           "TrainResult", "TrainRun", "auroc", "codes_of_rows", "feature_steering", "label_columns", "label_features",
           "read_sparsity", "sae_metrics", "spliced_loss", "steer_summary", "train_sae"]
