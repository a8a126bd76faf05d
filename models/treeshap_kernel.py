"""Numba kernels of path-dependent Tree SHAP with sklearn HGB's split rule (see models/explain.py).

Implements the exact path-dependent Tree SHAP algorithm (Lundberg, Erion & Lee 2018,
"Consistent individualized feature attribution for tree ensembles", Algorithm 2: EXTEND /
UNWIND over the unique features on a root-to-leaf path), the method behind
``shap.TreeExplainer``. It exists because shap's converter reads HGB's native categorical
splits as numeric thresholds; here each node decides like sklearn's own predictor: NaN
follows the missing branch; a category goes left when in the node's bitset, right when a known
category, else follows the missing branch; numbers go left when ≤ the threshold. Imported only
when explaining, so numba never slows the CLI's start-up.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def go_left(x, n, feature, threshold, miss_left, is_cat, bitset, bitsets, known, f_idx_map):
    v = x[feature[n]]
    if np.isnan(v):
        return miss_left[n]
    if is_cat[n]:
        if v < 0:
            return miss_left[n]
        code = np.int64(v) & 255  # sklearn casts to uint8 before the bitset lookup
        if (bitsets[bitset[n], code >> 5] >> (code & 31)) & 1:
            return True
        if (known[f_idx_map[feature[n]], code >> 5] >> (code & 31)) & 1:
            return False
        return miss_left[n]
    return v <= threshold[n]

@nb.njit(cache=True)
def extend(pf, pz, po, pw, off, depth, zf, of, fi):
    pf[off + depth] = fi
    pz[off + depth] = zf
    po[off + depth] = of
    pw[off + depth] = 1.0 if depth == 0 else 0.0
    for i in range(depth - 1, -1, -1):
        pw[off + i + 1] += of * pw[off + i] * (i + 1) / (depth + 1)
        pw[off + i] = zf * pw[off + i] * (depth - i) / (depth + 1)

@nb.njit(cache=True)
def unwind(pf, pz, po, pw, off, depth, pidx):
    of = po[off + pidx]
    zf = pz[off + pidx]
    nxt = pw[off + depth]
    for i in range(depth - 1, -1, -1):
        if of != 0:
            tmp = pw[off + i]
            pw[off + i] = nxt * (depth + 1) / ((i + 1) * of)
            nxt = tmp - pw[off + i] * zf * (depth - i) / (depth + 1)
        else:
            pw[off + i] = pw[off + i] * (depth + 1) / (zf * (depth - i))
    for i in range(pidx, depth):
        pf[off + i] = pf[off + i + 1]
        pz[off + i] = pz[off + i + 1]
        po[off + i] = po[off + i + 1]

@nb.njit(cache=True)
def unwound_sum(pz, po, pw, off, depth, pidx):
    of = po[off + pidx]
    zf = pz[off + pidx]
    nxt = pw[off + depth]
    total = 0.0
    if of != 0:
        for i in range(depth - 1, -1, -1):
            tmp = nxt * (depth + 1) / ((i + 1) * of)
            total += tmp
            nxt = pw[off + i] - tmp * zf * (depth - i) / (depth + 1)
    else:
        for i in range(depth - 1, -1, -1):
            total += pw[off + i] * (depth + 1) / (zf * (depth - i))
    return total

@nb.njit(cache=True)
def tree_shap_row(x, phi, root, size, value, count, feature, threshold, miss_left, left, right,
                  is_leaf, is_cat, bitset, bitsets, known, f_idx_map):
    """Add one tree's Tree SHAP values for row x to phi (shap's recursion, on an explicit stack).

    Each frame writes its path at parent_off + depth + 1; a child's region starts past its
    parent's, and the hot child's whole subtree is finished before the cold child is popped,
    so a parent's path is intact when its second child copies it (as in the recursion).
    """
    pf = np.full(size, -1, dtype=np.int64)
    pz = np.zeros(size)
    po = np.zeros(size)
    pw = np.zeros(size)
    stack_n = size
    s_node = np.empty(stack_n, dtype=np.int64)
    s_depth = np.empty(stack_n, dtype=np.int64)
    s_poff = np.empty(stack_n, dtype=np.int64)
    s_zf = np.empty(stack_n)
    s_of = np.empty(stack_n)
    s_fi = np.empty(stack_n, dtype=np.int64)
    top = 0
    s_node[0], s_depth[0], s_poff[0], s_zf[0], s_of[0], s_fi[0] = root, 0, 0, 1.0, 1.0, -1
    while top >= 0:
        node, depth, parent_off = s_node[top], s_depth[top], s_poff[top]
        pzf, pof, pfi = s_zf[top], s_of[top], s_fi[top]
        top -= 1
        off = parent_off + depth + 1
        for i in range(depth + 1):
            pf[off + i] = pf[parent_off + i]
            pz[off + i] = pz[parent_off + i]
            po[off + i] = po[parent_off + i]
            pw[off + i] = pw[parent_off + i]
        extend(pf, pz, po, pw, off, depth, pzf, pof, pfi)
        if is_leaf[node]:
            for i in range(1, depth + 1):
                w = unwound_sum(pz, po, pw, off, depth, i)
                phi[pf[off + i]] += w * (po[off + i] - pz[off + i]) * value[node]
            continue
        if go_left(x, node, feature, threshold, miss_left, is_cat, bitset, bitsets, known,
                   f_idx_map):
            hot, cold = left[node], right[node]
        else:
            hot, cold = right[node], left[node]
        split = feature[node]
        izf = 1.0
        iof = 1.0
        k = 0
        while k <= depth:
            if pf[off + k] == split:
                break
            k += 1
        if k != depth + 1:
            izf = pz[off + k]
            iof = po[off + k]
            unwind(pf, pz, po, pw, off, depth, k)
            depth -= 1
        w = count[node]
        top += 1  # cold first, so the hot subtree is finished before it
        s_node[top], s_depth[top], s_poff[top] = cold, depth + 1, off
        s_zf[top], s_of[top], s_fi[top] = count[cold] / w * izf, 0.0, split
        top += 1
        s_node[top], s_depth[top], s_poff[top] = hot, depth + 1, off
        s_zf[top], s_of[top], s_fi[top] = count[hot] / w * izf, iof, split


@nb.njit(cache=True, parallel=True)
def shap_values(X, root, size, value, count, feature, threshold, miss_left, left, right,
                is_leaf, is_cat, bitset, bitsets, known, f_idx_map):
    """One tree's Tree SHAP values for every row of X (n × features)."""
    n, f = X.shape
    out = np.zeros((n, f))
    for r in nb.prange(n):
        tree_shap_row(X[r], out[r], root, size, value, count, feature, threshold, miss_left,
                      left, right, is_leaf, is_cat, bitset, bitsets, known, f_idx_map)
    return out


@nb.njit(cache=True)
def shap_values_all_trees(X, roots, size, value, count, feature, threshold, miss_left, left,
                          right, is_leaf, is_cat, bitset, bitsets, known, f_idx_map):
    """Every tree's Tree SHAP values for each row of X, summed tree by tree, on the calling
    thread: for a row or two (`leadq serve`), where one call per tree from Python costs more
    than the tree's arithmetic. Each tree's values are computed from zero and then added, as
    the per-tree path adds them, so the sums are the same numbers."""
    n, f = X.shape
    out = np.zeros((n, f))
    phi = np.zeros(f)
    for r in range(n):
        for t in range(len(roots)):
            phi[:] = 0.0
            tree_shap_row(X[r], phi, roots[t], size, value, count, feature, threshold,
                          miss_left, left, right, is_leaf, is_cat, bitset, bitsets, known,
                          f_idx_map)
            out[r] += phi
    return out


@nb.njit(cache=True)
def tree_margins(X, roots, baseline, value, feature, threshold, miss_left, left, right, is_leaf,
                 is_cat, bitset, bitsets, known, f_idx_map):
    """The model's raw margin per row: each tree's leaf value added in tree order to the
    baseline, as scikit-learn's predictors add them (0 + baseline, then + each leaf), with the
    same split rule, so the sums are the same numbers; on the calling thread, for a few rows,
    where one predictor call per tree from Python costs more than walking the trees."""
    n = X.shape[0]
    out = np.zeros(n)
    for r in range(n):
        acc = 0.0
        acc += baseline
        for t in range(len(roots)):
            node = roots[t]
            while not is_leaf[node]:
                if go_left(X[r], node, feature, threshold, miss_left, is_cat, bitset, bitsets,
                           known, f_idx_map):
                    node = left[node]
                else:
                    node = right[node]
            acc += value[node]
        out[r] = acc
    return out


@nb.njit(cache=True, parallel=True)
def decisions(X, internal, feature, threshold, miss_left, is_cat, bitset, bitsets, known,
              f_idx_map):
    n = X.shape[0]
    out = np.zeros((n, len(internal)), dtype=np.uint8)
    for r in nb.prange(n):
        for k in range(len(internal)):
            out[r, k] = go_left(X[r], internal[k], feature, threshold, miss_left, is_cat,
                                bitset, bitsets, known, f_idx_map)
    return out



@nb.njit(cache=True, parallel=True)
def decision_codes(X, internal, feature, threshold, miss_left, is_cat, bitset, bitsets, known,
                   f_idx_map):
    """The directions a row takes at a tree's (at most 64) splits, as one integer per row."""
    n = X.shape[0]
    out = np.zeros(n, dtype=np.uint64)
    for r in nb.prange(n):
        code = np.uint64(0)
        for k in range(len(internal)):
            if go_left(X[r], internal[k], feature, threshold, miss_left, is_cat, bitset, bitsets,
                       known, f_idx_map):
                code |= np.uint64(1) << np.uint64(k)
        out[r] = code
    return out


# The same kernels without threads, for a few rows (`leadq serve`'s single leads): a parallel
# region's start and join cost milliseconds on a busy machine (the threads spin-wait for a
# core), per tree, while one row's work is microseconds. Each row's arithmetic is the same
# code either way, so the values are identical. Not cached on disk: numba names a cache file
# after the Python function, which the parallel kernels' cache already uses; they compile once
# per process, when the service's warm-up lead is explained.
shap_values_serial = nb.njit(shap_values.py_func)
decisions_serial = nb.njit(decisions.py_func)
decision_codes_serial = nb.njit(decision_codes.py_func)
