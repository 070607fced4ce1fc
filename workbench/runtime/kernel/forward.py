"""The kernel's decoder forward: MusicGen's decoder layers run on their own weights with a `StaticCache`,
a cross-attention cache computed once, and edits (`workbench.runtime.edits.EditRun`) applied in place at the
sites they touch: a layer's self-attention output (``attn``), its ``fc2`` output (``mlp``) and its output
(``resid``), the sites the hook runner's hooks see.

Every operation is transformers' own, in the same order on tensors of the same shapes (embeddings summed
codebook by codebook, layer norms, projections without bias, SDPA with the module's scaling and the
bidirectional mask transformers builds, per-codebook heads), so the logits are bit-identical to
``MusicgenForConditionalGeneration``'s; what is gone is the Python around them (cache objects, mask
factories, output recorders, kwargs plumbing and module hooks at every call). Because module hooks are not
called, `kernel_refusal` names a model with hooks on its decoder (``generate`` then runs transformers' loop).

Example:
    >>> import torch
    >>> from workbench.runtime.model import random_model
    >>> h = random_model("tiny")
    >>> decoder = DecoderWeights.of(h)
    >>> decoder.n_layers, decoder.heads, decoder.head_dim
    (3, 4, 8)
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from transformers.masking_utils import create_bidirectional_mask

from workbench.errors import BadInputError
from workbench.runtime.edits import EditRun
from workbench.runtime.kernel.cache import StaticCache


@dataclasses.dataclass(frozen=True)
class LayerWeights:
    """One decoder layer's tensors, read once per generation (attribute look-ups cost more than the maths here)."""

    self_norm: tuple
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    out: torch.Tensor
    cross_norm: tuple
    cross_q: torch.Tensor
    cross_k: torch.Tensor
    cross_v: torch.Tensor
    cross_out: torch.Tensor
    final_norm: tuple
    fc1: torch.Tensor
    fc2: torch.Tensor
    activation: object


def _norm(module) -> tuple:
    return module.normalized_shape, module.weight, module.bias, module.eps


def _activation(module):
    return getattr(module, "act", module)  # transformers' GELUActivation wraps F.gelu


@dataclasses.dataclass(frozen=True)
class DecoderWeights:
    """The decoder's tensors and shapes, and the config its masks are built from."""

    layers: tuple[LayerWeights, ...]
    embeddings: tuple[torch.Tensor, ...]
    positions: torch.Tensor
    final_norm: tuple
    heads_out: tuple[torch.Tensor, ...]
    heads: int
    head_dim: int
    scaling: float
    config: object
    enc_to_dec: object

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @classmethod
    def of(cls, handle) -> DecoderWeights:
        """Read a handle's MusicGen decoder (its modules keep their weights; nothing is copied)."""
        reason = _structural_refusal(handle)
        if reason is not None:
            raise BadInputError(reason)
        decoder = handle.model.decoder.model.decoder
        layers = []
        for layer in decoder.layers:
            attn, cross = layer.self_attn, layer.encoder_attn
            layers.append(LayerWeights(
                _norm(layer.self_attn_layer_norm), attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight,
                attn.out_proj.weight, _norm(layer.encoder_attn_layer_norm), cross.q_proj.weight, cross.k_proj.weight,
                cross.v_proj.weight, cross.out_proj.weight, _norm(layer.final_layer_norm), layer.fc1.weight,
                layer.fc2.weight, _activation(layer.activation_fn)))
        first = decoder.layers[0].self_attn
        model = handle.model
        project = (model.text_encoder.config.hidden_size != model.decoder.config.hidden_size
                   and model.decoder.config.cross_attention_hidden_size is None)
        return cls(tuple(layers), tuple(e.weight for e in decoder.embed_tokens), decoder.embed_positions.weights,
                   _norm(decoder.layer_norm), tuple(head.weight for head in model.decoder.lm_heads), first.num_heads,
                   first.head_dim, first.scaling, decoder.config, model.enc_to_dec_proj if project else None)


def _structural_refusal(handle) -> str | None:
    decoder = handle.model.decoder.model.decoder
    if decoder.config._attn_implementation != "sdpa":
        return (f"the kernel computes attention as transformers' 'sdpa' does, but this model uses "
                f"{decoder.config._attn_implementation!r}: load it with attn_implementation='sdpa'")
    for layer in decoder.layers:
        attn, cross = layer.self_attn, layer.encoder_attn
        if any(p.bias is not None for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, cross.q_proj,
                                            cross.k_proj, cross.v_proj, cross.out_proj, layer.fc1, layer.fc2)):
            return "the kernel expects MusicGen's decoder projections without bias"
    return None


def kernel_refusal(handle) -> str | None:
    """Why the kernel cannot give what transformers' ``generate`` gives for this model now; None when it can.

    Refused: attention other than ``sdpa``, projections with bias, and forward hooks on the decoder's modules
    (someone else's measurement or edit: the kernel calls no module hooks, so it would silently skip them).
    """
    reason = _structural_refusal(handle)
    if reason is not None:
        return reason
    if _global_forward_hooks():
        return ("global module forward hooks are registered (torch.nn.modules.module.register_module_forward_hook) "
                "and the kernel calls no module hooks")
    for name, module in handle.model.decoder.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return (f"the decoder module {name or 'decoder'!r} has forward hooks, which the kernel does not call: "
                    "pass their work as edits (workbench.runtime.edits), or remove them")
    return None


def _global_forward_hooks() -> bool:
    hooks = torch.nn.modules.module
    return bool(getattr(hooks, "_global_forward_hooks", None) or getattr(hooks, "_global_forward_pre_hooks", None))


@dataclasses.dataclass
class CrossAttention:
    """Per layer, the keys and values of the text states (computed once), and the SDPA mask per query length."""

    keys_values: list[tuple[torch.Tensor, torch.Tensor]]
    states: torch.Tensor
    attention_mask: torch.Tensor
    masks: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, weights: DecoderWeights, states: torch.Tensor, attention_mask: torch.Tensor) -> CrossAttention:
        """states: the text encoder's output (rows, S, hidden_text), guidance's null rows included; the
        projection and the padding zeroing transformers' forward applies at every step are applied once."""
        if weights.enc_to_dec is not None:
            states = weights.enc_to_dec(states)
        states = states * attention_mask[..., None]
        rows, length = states.shape[:2]
        shape = (rows, length, -1, weights.head_dim)
        keys_values = [(F.linear(states, w.cross_k).view(shape).transpose(1, 2).contiguous(),
                        F.linear(states, w.cross_v).view(shape).transpose(1, 2).contiguous())
                       for w in weights.layers]
        return cls(keys_values, states, attention_mask)

    def mask(self, weights: DecoderWeights, hidden: torch.Tensor):
        """transformers' cross-attention mask for queries shaped like ``hidden`` (built once per length)."""
        q = hidden.shape[1]
        if q not in self.masks:
            self.masks[q] = create_bidirectional_mask(config=weights.config, inputs_embeds=hidden,
                                                      attention_mask=self.attention_mask,
                                                      encoder_hidden_states=self.states)
        return self.masks[q]


def _attend(query, keys, values, mask, scaling: float, causal: bool, rows: int, q: int) -> torch.Tensor:
    """transformers' sdpa_attention_forward and MusicgenAttention's reshapes (no GQA, no dropout)."""
    out = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, dropout_p=0.0, scale=scaling,
                                         is_causal=causal and q > 1 and mask is None)
    out = out.reshape(out.shape[0], -1, q, values.shape[-1]).transpose(1, 2).contiguous()
    return out.reshape(rows, q, -1).contiguous()


def decoder_logits(weights: DecoderWeights, tokens: torch.Tensor, cache: StaticCache, cross: CrossAttention,
                   run: EditRun | None = None, step: int | None = None) -> torch.Tensor:
    """float32 logits (rows x codebooks, vocab) of the last position for tokens (rows, codebooks, q).

    Writes the q new positions into ``cache``; ``run`` edits the sites it touches at generation ``step``, in
    place (``owned=True``: every state it sees is the kernel's own fresh tensor).
    """
    rows, n_codebooks, q = tokens.shape
    hidden = sum(F.embedding(tokens[:, k], weights.embeddings[k]) for k in range(n_codebooks))
    hidden = hidden + weights.positions[cache.length:cache.length + q]
    cross_mask = cross.mask(weights, hidden)
    shape = (rows, q, -1, weights.head_dim)
    edited = run.layer_sites if run is not None else {}
    for index, w in enumerate(weights.layers):
        sites = edited.get(index, ())
        residual = hidden
        x = F.layer_norm(hidden, *w.self_norm)
        query = F.linear(x, w.q).view(shape).transpose(1, 2)
        keys, values = cache.write(index, F.linear(x, w.k).view(shape).transpose(1, 2),
                                   F.linear(x, w.v).view(shape).transpose(1, 2))
        attended = F.linear(_attend(query, keys, values, None, weights.scaling, True, rows, q), w.out)
        if "attn" in sites:
            attended = run.apply("attn", index, attended, step, owned=True)
        hidden = residual + attended
        residual = hidden
        x = F.layer_norm(hidden, *w.cross_norm)
        query = F.linear(x, w.cross_q).view(shape).transpose(1, 2)
        keys, values = cross.keys_values[index]
        hidden = residual + F.linear(_attend(query, keys, values, cross_mask, weights.scaling, False, rows, q),
                                     w.cross_out)
        residual = hidden
        x = w.activation(F.linear(F.layer_norm(hidden, *w.final_norm), w.fc1))
        x = F.linear(x, w.fc2)
        if "mlp" in sites:
            x = run.apply("mlp", index, x, step, owned=True)
        hidden = residual + x
        if "resid" in sites:
            hidden = run.apply("resid", index, hidden, step, owned=True)
    cache.advance(q)
    hidden = F.layer_norm(hidden, *weights.final_norm)
    logits = torch.stack([F.linear(hidden, head) for head in weights.heads_out], dim=1)
    return logits.reshape(-1, *logits.shape[2:])[:, -1].to(copy=True, dtype=torch.float32)
