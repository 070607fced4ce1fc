"""What is computed from stored activations: probes, directions, projections (UMAP/PCA), steering scores."""
