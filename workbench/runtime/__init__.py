"""The model and what runs inside it: loading, capture, steering, hooks (the hot path), generation,
teacher forcing, nnsight tracing (the only module that imports nnsight) and clips. Imports torch."""
