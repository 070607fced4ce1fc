"""musicgen-workbench core: load MusicGen, capture its residual stream, steer it while it generates."""
