"""Restormer's two hot operations, each with a hand-written backward for training.

Both operate on the *packed* output of a convolution (MDTA's q|k|v, the cross-attention's q|v, GDFN's
gate|value). Autograd would return the gradient of each chunk separately and then concatenate them (a
full-size copy), and its attention gradient comes back in NCHW even when the features are channels_last (a
second copy before the convolution's backward). The backward passes here write every chunk's gradient
straight into one buffer laid out like the packed input. The forward arithmetic is shared with the plain
path (outputs identical to the no-grad plain path; on CPU the plain path under autograd takes its pixel norms
from ``vector_norm``, equal to float rounding); gradients agree to float rounding (tests/test_restormer_ops.py).

The plain autograd path is used when ``fused_backward=False``, when no gradient is needed, or under autocast
with float32 features (autograd's per-op casting rules then apply). Features in bf16 or fp16 (the ``amp``
policy of `vlunet_basicsr.utils.precision`, which lowers the weights) take the same paths as float32: the
large products run in the features' dtype, the per-channel norms, the small Gram matrices, the softmax and
their gradients in float32 (`_wide`), which leaves float32 arithmetic unchanged.
"""
import torch
from torch.nn import functional as F

#: F.normalize's floor on the norm; a feature whose norm falls below it gets no gradient through the norm.
NORM_EPS = 1e-12
#: For inference on CUDA, per-head Gram matrices over many pixels are summed from chunks of at least this many
#: pixels: cuBLAS runs a batched float32 (c x HW) @ (HW x c) with a small c on a handful of SMs (measured on an
#: H100: 2 heads of 48 channels over 512x512 pixels, 9.0 ms in one product, 0.5 ms in 64 chunks; a 1024x1024
#: float32 restore, 0.72 s -> 0.36 s). Not in training: a float32 step at 128x128, batch 2, measured slower with
#: chunks (0.245 s against 0.188 s; cause not established).
GRAM_CHUNK = 4096


def _wide(tensor):
    """``tensor`` in float32 when it is in half precision (bf16, fp16); else ``tensor`` itself."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor


def _tokens(x, num_heads):
    """(B, C, H, W) -> (B, heads, H*W, C/heads), a view in NCHW and channels_last alike."""
    return x.flatten(2).unflatten(1, (num_heads, x.shape[1] // num_heads)).transpose(-2, -1)


def gram_chunks(qt):
    """How many pixel chunks `gram` sums for inference: 1 on CPU and for a single product (B * heads = 1), else
    the largest power of two that divides H*W into chunks of at least GRAM_CHUNK pixels."""
    b, heads, hw, _ = qt.shape
    chunks = 1
    if qt.is_cuda and b * heads > 1:
        while hw % (2 * chunks) == 0 and hw // (2 * chunks) >= GRAM_CHUNK:
            chunks *= 2
    return chunks


def _batch_axes_fold(tensor):
    """Whether the batch axes of ``tensor`` (all but the last two) fold into one axis without a copy."""
    folded_stride = None
    for size, stride in zip(reversed(tensor.shape[:-2]), reversed(tensor.stride()[:-2])):
        if size == 1:
            continue
        if folded_stride is not None and stride != folded_stride:
            return False
        folded_stride = stride * size
    return True


def head_matmul(a, b, out=None):
    """``a @ b`` for (B, heads, ...) operands, written into ``out`` when given (outside autograd).

    A batched product folds its batch axes into one, copying an operand whose axes do not fold: token views of
    channels_last features (B, heads) and chunked Gram operands (B, heads, chunks) do not. Those are multiplied
    head by head, whose axes fold (measured on CPU, batch 2, 96 channels, 2 heads, 128x128: Gram 8.7 -> 1.5 ms,
    ``attn @ v`` into a channels_last output 2.4 -> 1.3 ms).
    """
    if all(_batch_axes_fold(t) for t in (a, b) + (() if out is None else (out,))):
        return torch.matmul(a, b, out=out)
    if out is None:
        return torch.stack([a[:, i] @ b[:, i] for i in range(a.shape[1])], 1)
    for i in range(a.shape[1]):
        torch.matmul(a[:, i], b[:, i], out=out[:, i])
    return out


def gram(qt, kt, chunks=1):
    """``q.T @ k`` per head, (B, heads, H*W, c) twice -> (B, heads, c, c), summed over ``chunks`` pixel chunks."""
    if chunks == 1:
        return head_matmul(qt.transpose(-2, -1), kt)
    return head_matmul(qt.unflatten(2, (chunks, -1)).transpose(-2, -1), kt.unflatten(2, (chunks, -1))).sum(2)


def _pixel_norms(xt):
    """L2 norm over the pixels of each channel, (B, heads, H*W, c) -> (B, heads, c).

    On CPU, outside autograd, square-and-sum is about 4x faster than ``vector_norm`` on these strided views
    (measured); autograd keeps ``vector_norm``, whose gradient at a zero norm is 0 rather than NaN.
    """
    wide = {} if _wide(xt) is xt else {'dtype': torch.float32}  # half precision: summed in float32
    if xt.is_cuda or (torch.is_grad_enabled() and xt.requires_grad):
        return torch.linalg.vector_norm(xt, dim=-2, **wide)
    return xt.square().sum(-2, **wide).sqrt()


def _attention_weights(qt, kt, temperature, chunks=1):
    """Softmax over channels of the scaled cosine similarity between q's and k's channels.

    ``normalize(q) @ normalize(k).T`` is computed as ``(q @ k.T) / (|q| |k|.T)``: the division happens on the
    small (C/heads)^2 matrix instead of on two full-size tensors.
    """
    q_norm = _pixel_norms(qt).clamp_min(NORM_EPS)
    k_norm = _pixel_norms(kt).clamp_min(NORM_EPS)
    cosine = _wide(gram(qt, kt, chunks)) / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2))
    return (cosine * temperature).softmax(dim=-1), cosine, q_norm, k_norm


def _attend(attn, vt, like):
    """``attn @ v`` as (B, C, H, W), in the memory layout of ``like`` (v's channel slice)."""
    b, c, h, w = like.shape
    attn = attn.to(vt.dtype)
    if like.stride(1) != 1 or h * w == 1:
        return (attn @ vt.transpose(-2, -1)).reshape(b, c, h, w)
    # Channels innermost: pixels stay the outer axis of the product, whose heads fill the output's channels.
    heads = attn.shape[1]
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        products = [vt[:, i] @ attn[:, i].transpose(-2, -1) for i in range(heads)]
        return (products[0] if heads == 1 else torch.cat(products, -1)).unflatten(1, (h, w)).permute(0, 3, 1, 2)
    device = vt.device.type
    if torch.is_autocast_enabled(device):  # an out= product is not autocast: cast as autocast would
        dtype = torch.get_autocast_dtype(device)
        attn, vt = attn.to(dtype), vt.to(dtype)
    out = torch.empty((b, c, h, w), dtype=torch.result_type(attn, vt), device=vt.device,
                      memory_format=torch.channels_last)
    head_matmul(vt, attn.transpose(-2, -1), out=_tokens(out, heads))
    return out


def _split(packed, key, num_heads):
    """Token views of q, k, v: ``packed`` is q|k|v, or q|v when ``key`` is given."""
    if key is None:
        q, k, v = packed.chunk(3, dim=1)
    else:
        (q, v), k = packed.chunk(2, dim=1), key
    return _tokens(q, num_heads), _tokens(k, num_heads), _tokens(v, num_heads), v


def set_fused_backward(net, fused_backward):
    """Set the ``fused_backward`` switch of every module of ``net`` that has one (the attention and GDFN gate blocks
    built on this module); an arch's constructor argument of the same name calls it."""
    for module in net.modules():
        if hasattr(module, 'fused_backward'):
            module.fused_backward = fused_backward


def _needs_plain_autograd(fused_backward, *tensors):
    if not fused_backward or not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors):
        return True
    device = tensors[0].device.type
    return torch.is_autocast_enabled(device) and tensors[0].dtype != torch.get_autocast_dtype(device)


class _ChannelAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, packed, key, temperature, num_heads):
        qt, kt, vt, v = _split(packed, key, num_heads)
        attn, cosine, q_norm, k_norm = _attention_weights(qt, kt, temperature)
        ctx.num_heads = num_heads
        ctx.save_for_backward(packed, key, temperature, attn, cosine, q_norm, k_norm)
        return _attend(attn, vt, v)

    @staticmethod
    def backward(ctx, grad_out):
        packed, key, temperature, attn, cosine, q_norm, k_norm = ctx.saved_tensors
        heads = ctx.num_heads
        qt, kt, vt, _ = _split(packed, key, heads)
        gt = _tokens(grad_out, heads)
        grad_attn = _wide(head_matmul(gt.transpose(-2, -1), vt))
        grad_logits = attn * (grad_attn - (grad_attn * attn).sum(-1, keepdim=True))
        grad_temperature = (grad_logits * cosine).sum(dim=(0, 2, 3)).view_as(temperature).to(temperature.dtype)
        grad_cosine = grad_logits * temperature
        grad_gram = grad_cosine / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2))
        grad_cosine_x_cosine = grad_cosine * cosine
        # d|x|/dx = x/|x|; through cosine = gram / (|q||k|) each norm receives -sum(grad_cosine * cosine) / |x|.
        q_scale = -grad_cosine_x_cosine.sum(-1) / q_norm.square() * (q_norm > NORM_EPS)
        k_scale = -grad_cosine_x_cosine.sum(-2) / k_norm.square() * (k_norm > NORM_EPS)
        dtype = packed.dtype  # the large products in the features' dtype (their own, in float32)
        grad_gram, attn, q_scale, k_scale = (t.to(dtype) for t in (grad_gram, attn, q_scale, k_scale))

        grad_packed = torch.empty_like(packed)
        c = grad_out.shape[1]
        q_slot, v_slot = grad_packed.narrow(1, 0, c), grad_packed.narrow(1, grad_packed.shape[1] - c, c)
        head_matmul(kt, grad_gram.transpose(-2, -1), out=_tokens(q_slot, heads)).addcmul_(qt, q_scale.unsqueeze(-2))
        head_matmul(gt, attn, out=_tokens(v_slot, heads))
        if key is None:
            k_slot = grad_packed.narrow(1, c, c)
            grad_key = None
        else:
            k_slot = grad_key = torch.empty_like(key)
        head_matmul(qt, grad_gram, out=_tokens(k_slot, heads)).addcmul_(kt, k_scale.unsqueeze(-2))
        return grad_packed, grad_key, grad_temperature, None


def split_channel_attention(q, k, v, num_heads, temperature):
    """`channel_attention` (inference) of q, k and v given apart, each (B, C, H, W): the form exported graphs take
    (`vlunet_basicsr.archs.restormer_blocks.conv_part`). Each head's channels stay rows of a (C/heads, H*W) matrix,
    so the graph needs no transpose but the key's, which runtimes fold into the product."""
    b, c, h, w = q.shape
    q, k, v = (x.reshape(b, num_heads, c // num_heads, h * w) for x in (q, k, v))
    norms = [x.norm(dim=-1).clamp_min(NORM_EPS) for x in (q, k)]
    cosine = (q @ k.transpose(-2, -1)) / (norms[0].unsqueeze(-1) * norms[1].unsqueeze(-2))
    return ((cosine * temperature).softmax(dim=-1) @ v).reshape(b, c, h, w)


def channel_attention(packed, num_heads, temperature, key=None, fused_backward=True):
    """Transposed (channel) attention of MDTA: each head's (C/heads)^2 map over L2-normalised pixels.

    Args:
        packed (Tensor): (B, 3C, H, W) holding q|k|v, or (B, 2C, H, W) holding q|v when ``key`` is given.
        num_heads (int): Heads; C must be divisible by it.
        temperature (Tensor): (heads, 1, 1) learnable scale.
        key (Tensor | None): (B, C, H, W) keys for cross-attention.
        fused_backward (bool): Use the hand-written backward when a gradient is needed.

    Returns:
        Tensor: (B, C, H, W), in the memory layout (NCHW or channels_last) of the input.
    """
    if _needs_plain_autograd(fused_backward, packed, key, temperature):
        qt, kt, vt, v = _split(packed, key, num_heads)
        chunks = 1 if torch.is_grad_enabled() else gram_chunks(qt)
        return _attend(_attention_weights(qt, kt, temperature, chunks)[0], vt, v)
    return _ChannelAttention.apply(packed, key, temperature, num_heads)


class _GatedGELU(torch.autograd.Function):

    @staticmethod
    def forward(ctx, packed):
        gate, value = packed.chunk(2, dim=1)
        activated = F.gelu(gate)
        ctx.save_for_backward(packed, activated)
        return activated * value

    @staticmethod
    def backward(ctx, grad_out):
        packed, activated = ctx.saved_tensors
        gate, value = packed.chunk(2, dim=1)
        grad_packed = torch.empty_like(packed)
        grad_gate, grad_value = grad_packed.chunk(2, dim=1)
        torch.mul(grad_out, activated, out=grad_value)
        torch.ops.aten.gelu_backward.grad_input(grad_out * value, gate, grad_input=grad_gate)
        return grad_packed


def gated_gelu(packed, fused_backward=True):
    """GDFN's gate: ``gelu(gate) * value`` for ``packed`` = gate|value along the channels."""
    if _needs_plain_autograd(fused_backward, packed):
        gate, value = packed.chunk(2, dim=1)
        return F.gelu(gate) * value
    return _GatedGELU.apply(packed)
