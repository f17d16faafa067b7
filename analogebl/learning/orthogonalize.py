"""⑥ Matrix primitives of the orthogonalizing optimizers (Muon, SMEP, NaturalEP, SDMEP).

Every function takes NumPy arrays or torch tensors (CPU or CUDA) and returns the same kind,
so optimizer state never leaves the backend. Weights are handled through their
``(fan_out, fan_in)`` matrix view: a dense coupling ``W`` stored ``(n_in, n_out)`` is viewed
as ``W.T``; a conv kernel ``(O, I, kh, kw)`` as ``(O, I*kh*kw)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "NS5_COEFFS",
    "column_normalize",
    "from_matrix",
    "newton_schulz5",
    "newton_schulz5_spectral",
    "orthonormalize_columns",
    "spectral_norm",
    "to_matrix",
]

Array = Any

#: Coefficients (a, b, c) of the quintic Newton–Schulz map of Jordan (2024), Muon.
NS5_COEFFS = (3.4445, -4.7750, 2.0315)


def _is_torch(a: Array) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def _fro(a: Array) -> Array:
    return (a * a).sum() ** 0.5


def to_matrix(p: Array) -> Array:
    """The ``(fan_out, fan_in)`` matrix of a weight, ``W.T`` (dense) or ``K.reshape(O, -1)``,
    as a C-contiguous copy: every array derived from it (momentum, factors) then has the
    memory layout a checkpoint restores, so BLAS takes the same code path before and after
    a resume (a transposed view would be summed in another order: not bit-identical)."""
    if p.ndim == 2:
        m = p.T
    elif p.ndim == 4:
        m = p.reshape(p.shape[0], -1)
    else:
        raise ValueError(f"no matrix view for a {p.ndim}-D parameter")
    return m.contiguous() if _is_torch(m) else np.ascontiguousarray(m)


def from_matrix(m: Array, like: Array) -> Array:
    """Inverse of :func:`to_matrix` for a parameter shaped like ``like`` (C-contiguous)."""
    out = m.T if like.ndim == 2 else m.reshape(tuple(like.shape))
    return out.contiguous() if _is_torch(out) else np.ascontiguousarray(out)


def newton_schulz5(g: Array, steps: int = 5, eps: float = 1e-7) -> Array:
    """Approximate orthogonalization ``U V^T`` of ``G = U S V^T`` by the quintic iteration.

    ``X_0 = G / (||G||_F + eps)``; ``X <- a X + b (X X^T) X + c (X X^T)^2 X`` with
    ``(a, b, c) =`` :data:`NS5_COEFFS`, on the wide orientation (rows <= columns). Each
    singular value follows ``x <- a x + b x^3 + c x^5`` (see
    :func:`newton_schulz5_spectral`), which pushes every value of ``(0, 1]`` into roughly
    ``[0.7, 1.2]`` in five steps; the singular vectors are unchanged.
    """
    a, b, c = NS5_COEFFS
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / (_fro(x) + eps)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * (s @ s)) @ x
    return x.T if tall else x


def newton_schulz5_spectral(g: np.ndarray, steps: int = 5, eps: float = 1e-7) -> np.ndarray:
    """Slow reference of :func:`newton_schulz5` through the SVD (NumPy, float64).

    ``G = U diag(s) V^T``; ``x_0 = s / (||s||_2 + eps)``; ``x <- a x + b x^3 + c x^5`` applied
    ``steps`` times elementwise; result ``U diag(x) V^T``.
    """
    a, b, c = NS5_COEFFS
    g = np.asarray(g, dtype=np.float64)
    u, s, vt = np.linalg.svd(g, full_matrices=False)
    x = s / (np.sqrt(np.sum(s * s)) + eps)
    for _ in range(steps):
        x = a * x + b * x**3 + c * x**5
    return (u * x) @ vt


def spectral_norm(w: Array, v: Array, iterations: int = 3) -> tuple[float, Array]:
    """Largest singular value of the matrix ``w`` by power iteration from ``v``.

    ``u = W v / ||W v||``; ``v = W^T u / ||W^T u||``; ``sigma = ||W v||`` after the last
    ``v`` update. Returns ``(sigma, v)``; keep ``v`` and pass it back next step (the
    estimate tightens as the weight changes slowly), as in spectral normalization.
    """
    for _ in range(iterations):
        u = w @ v
        u = u / (_fro(u) + 1e-30)
        v = w.T @ u
        v = v / (_fro(v) + 1e-30)
    return float(_fro(w @ v)), v


def orthonormalize_columns(p: Array) -> Array:
    """Orthonormal basis of the columns of ``p`` (reduced QR, signs fixed by ``diag(R) >= 0``)."""
    if _is_torch(p):
        import torch

        q, r = torch.linalg.qr(p, mode="reduced")
        sign = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
    else:
        q, r = np.linalg.qr(p, mode="reduced")
        sign = np.where(np.diagonal(r) < 0, -1.0, 1.0).astype(q.dtype)
    return q * sign


def column_normalize(r: Array, eps: float = 1e-8) -> Array:
    """Scale each column of ``r`` to unit Euclidean norm (Dion's ``ColumnNormalize``)."""
    return r / (((r * r).sum(0)) ** 0.5 + eps)


def eye_like(a: Array, n: int) -> Array:
    """Identity of size ``n`` with the dtype and device of ``a``."""
    if _is_torch(a):
        import torch

        return torch.eye(n, dtype=a.dtype, device=a.device)
    return np.eye(n, dtype=a.dtype)


def inverse(a: Array) -> Array:
    """Matrix inverse (symmetric positive definite inputs here: damped Kronecker factors)."""
    if _is_torch(a):
        import torch

        return torch.linalg.inv(a)
    return np.linalg.inv(a)


def trace(a: Array) -> float:
    """Trace as a Python float."""
    return float(a.diagonal().sum())


def asarray_like(x: np.ndarray, like: Array) -> Array:
    """``x`` (NumPy) as an array of the same kind, dtype and device as ``like``."""
    if _is_torch(like):
        import torch

        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return np.asarray(x, dtype=like.dtype)
