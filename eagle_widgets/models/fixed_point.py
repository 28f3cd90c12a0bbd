"""Pillow's resampling passes reproduced exactly on the device, as sparse products over a region basis.

`FixedPointPass` is one pass (fixed-point sums, rounded and clipped as Pillow does) in float32 with an exact
split; `RegionFirstPass` a first pass over a region basis that is a gather for 0/1 masks; `RegionPolynomial`
a whole direct resize, both passes and the processor's layout, as one sparse product for 0/1 masks.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .resampling import round_pass

# torch calls its sparse CSR support "beta" once per process; the composers check themselves on real processor calls.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

def csr_parts(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, num_rows: int):
    """CSR index arrays from COO entries sorted by row."""
    indptr = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_rows), out=indptr[1:])
    return torch.from_numpy(indptr), torch.from_numpy(cols.astype(np.int64)), torch.from_numpy(vals)


class FixedPointPass:
    """One of Pillow's passes: fixed-point sums `matrix @ x` (whole numbers), rounded and clipped as Pillow does.

    float32 products are several times faster than float64 but exact only below 2**24, and the sums reach
    2**31. So the matrix is split as hi * 2**12 + lo, whose partial sums stay exact in float32 for inputs up to
    `input_max` (checked here; a pass that could exceed it keeps float64), and Pillow's (s + 2**21) >> 22 is
    recombined exactly from the two parts.
    """

    def __init__(self, matrix, input_max: float = 1.0):
        matrix = matrix.tocsr()
        matrix.sort_indices()
        hi = np.round(matrix.data / 4096.0)
        lo = matrix.data - hi * 4096.0
        row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        bound = lambda part: np.bincount(row_of, np.abs(part), matrix.shape[0]).max(initial=0) * input_max  # noqa
        self.shape = matrix.shape
        self.split = bound(hi) < 2 ** 22 and bound(lo) < 2 ** 22
        rows, cols = torch.from_numpy(matrix.indptr).long(), torch.from_numpy(matrix.indices).long()
        values = [torch.from_numpy(hi).float(), torch.from_numpy(lo).float()] if self.split \
            else [torch.from_numpy(matrix.data).double()]
        # The parts share one set of indices.
        self.parts = [torch.sparse_csr_tensor(rows, cols, v, size=matrix.shape, check_invariants=True) for v in values]

    def to(self, device) -> FixedPointPass:
        if self.parts[0].device != torch.device(device):
            rows, cols = self.parts[0].crow_indices().to(device), self.parts[0].col_indices().to(device)
            self.parts = [torch.sparse_csr_tensor(rows, cols, p.values().to(device), size=self.shape)
                          for p in self.parts]
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[rows, cols] whole numbers (float32) -> [out, cols] Pillow's rounded, clipped result (float32)."""
        if not self.split:
            return round_pass(torch.sparse.mm(self.parts[0], x.double())).float()
        t = torch.sparse.mm(self.parts[0], x).mul_(4096.0).add_(2.0 ** 21)  # multiples of 2**12: exact
        q = torch.floor(t * 2.0 ** -22)
        r = t.sub_(q * 2.0 ** 22)  # in [0, 2**22)
        r.add_(torch.sparse.mm(self.parts[1], x)).mul_(2.0 ** -22).floor_()
        return q.add_(r).clamp_(0.0, 255.0)

    @property
    def nbytes(self) -> int:
        return csr_bytes(self.parts[0]) + sum(p.values().numel() * p.values().element_size() for p in self.parts[1:])


LOOKUP_REGIONS = 8  # an element whose filters reach more regions is composed by fixed-point sums
LOOKUP_BYTES = 256 << 20  # the polynomial's size limit: beyond it, fixed-point sums
LOOKUP_WORK = 64 << 20  # float64 values held at once while building it


class RegionPolynomial:
    """Every model-input element as a polynomial in the 0/1 visibility of the few regions its filters reach.

    For a 0/1 mask a resized element depends only on which of the k regions under its two-pass footprint are
    visible, so its 2**k possible values are computed once, exactly (Pillow's sums, rounded and clipped after
    each pass, in float64). Written in the subset (Moebius) basis, value = sum over subsets T of c_T times the
    product of T's visibilities, with whole-number coefficients; composing a batch is then the products that
    some element uses and one sparse product [elements, products] @ [products, b], exact in float32 (every
    partial sum stays below 2**24). Built from each direct resize's first pass (region basis), second-pass
    taps and frame, and `source`, the resized element each model-input element is (-1: none).
    """

    class TooWide(Exception):
        """Some element's footprint reaches more than LOOKUP_REGIONS regions, or the tables would be too big."""

    def __init__(self, direct, source: np.ndarray, num_regions: int):
        n = num_regions
        offsets = np.cumsum([0] + [h * w * 3 for _, _, (h, w, _) in direct])
        pair_element, pair_row, pair_tap, row_offset = [], [], [], 0
        for k, (first, second, (h, w, transposed)) in enumerate(direct):
            at = np.flatnonzero((source >= offsets[k]) & (source < offsets[k + 1]))
            local = source[at] - offsets[k]  # in the original orientation: (y, x, c) over (w, h) if transposed
            c, pixel = local % 3, local // 3
            yy, xx = (pixel // h, pixel % h) if transposed else (pixel // w, pixel % w)
            i, xp = (xx, yy) if transposed else (yy, xx)  # frame row (second-pass output) and column
            taps = np.diff(second.indptr)[i]
            tap = ragged(second.indptr[i], taps)
            pair_element.append(np.repeat(at, taps))
            pair_row.append(row_offset + (second.indices[tap] * w + np.repeat(xp, taps)) * 3 + np.repeat(c, taps))
            pair_tap.append(second.data[tap])
            row_offset += first.shape[0]
        from scipy.sparse import vstack

        first = vstack([f for f, _, _ in direct]).tocsr()
        pair_element, pair_row, pair_tap = map(np.concatenate, (pair_element, pair_row, pair_tap))
        # Triples (pair, region, first-pass sum of that region's pixels) and each element's regions.
        per_pair = np.diff(first.indptr)[pair_row]
        entry = ragged(first.indptr[pair_row], per_pair)
        triple_pair = np.repeat(np.arange(len(pair_row)), per_pair)
        triple_region, triple_sum = first.indices[entry], first.data[entry]
        # Each element's regions, sorted (scipy's CSR conversion sorts without a general sort), and each
        # triple's region's rank among them.
        from scipy.sparse import coo_matrix

        triple_element = pair_element[triple_pair]
        reach = coo_matrix((np.ones(len(triple_element), np.int8), (triple_element, triple_region)),
                           shape=(len(source), n)).tocsr()
        reach.sum_duplicates()
        width = np.diff(reach.indptr)
        first_of = reach.indptr
        element_region = np.repeat(np.arange(len(source)), width) * n + reach.indices
        local = np.searchsorted(element_region, triple_element * n + triple_region) - first_of[triple_element]
        if width.max(initial=0) > LOOKUP_REGIONS:
            raise self.TooWide()
        self.elements = len(source)
        entry_element, entry_regions, entry_coefficient, coefficients_total = [], [], [], 0
        for k in range(1, int(width.max(initial=0)) + 1):
            at = np.flatnonzero(width == k)
            if not len(at):
                continue
            coefficients_total += len(at) * 2 ** k
            if coefficients_total * 16 > LOOKUP_BYTES:  # at most 2**k coefficients per element, each ~16 bytes
                raise self.TooWide()
            values = []
            per_chunk = max(1, LOOKUP_WORK // (2 ** k * 16 * max(1, len(pair_row) // max(1, len(source)))))
            for start in range(0, len(at), per_chunk):
                values.append(self._values(at[start:start + per_chunk], k, pair_element, pair_tap, triple_pair,
                                           local, triple_sum))
            coefficients = moebius(np.concatenate(values))  # [elements, 2**k]
            assert not coefficients[:, 0].any()  # all regions hidden: black
            regions = element_region[first_of[at][:, None] + np.arange(k)] % n  # [elements, k]
            element, subset = np.nonzero(coefficients)
            members = (subset[:, None] >> np.arange(k)[None, :]) & 1
            padded = np.full((len(element), LOOKUP_REGIONS), n)  # n: a region that is always visible
            padded[:, :k] = np.where(members == 1, regions[element], n)
            entry_element.append(at[element])
            entry_regions.append(np.sort(padded, axis=1))
            entry_coefficient.append(coefficients[element, subset])
        entry_element, entry_regions, entry_coefficient = (
            np.concatenate(x) if x else np.zeros((0,) + shape, dtype)
            for x, shape, dtype in ((entry_element, (), np.int64), (entry_regions, (LOOKUP_REGIONS,), np.int64),
                                    (entry_coefficient, (), np.float64)))
        # Products of the regions' visibilities that some element uses: its features.
        width = int((entry_regions < n).sum(axis=1).max(initial=1))
        entry_regions = entry_regions[:, :width]
        if (n + 1) ** width < 2 ** 62:  # one integer key per product: a 1-d unique is much faster
            keys = entry_regions @ ((n + 1) ** np.arange(width))
            keys, first_entry, feature_of = np.unique(keys, return_index=True, return_inverse=True)
            features = entry_regions[first_entry]
        else:
            features, feature_of = np.unique(entry_regions, axis=0, return_inverse=True)
        self.features = torch.from_numpy(np.ascontiguousarray(features))  # [P, width]
        order = np.lexsort((feature_of.reshape(-1), entry_element))
        parts = csr_parts(entry_element[order], feature_of.reshape(-1)[order],
                          entry_coefficient[order].astype(np.float32), self.elements)
        self.matrix = torch.sparse_csr_tensor(*parts, size=(self.elements, len(features)), check_invariants=True)

    @staticmethod
    def _values(elements, k, pair_element, pair_tap, triple_pair, local, triple_sum) -> np.ndarray:
        """[len(elements), 2**k]: each element's value (whole levels) for every subset of its k regions."""
        from scipy.sparse import csr_matrix

        index = np.full(pair_element.max(initial=0) + 1, -1)
        index[elements] = np.arange(len(elements))
        pairs = np.flatnonzero(index[pair_element] >= 0)
        pair_index = np.full(len(pair_element), -1)
        pair_index[pairs] = np.arange(len(pairs))
        triples = np.flatnonzero(pair_index[triple_pair] >= 0)
        # Each pair's first-pass sum per local region, then per subset: [pairs, k] @ [k, 2**k].
        per_region = np.bincount(pair_index[triple_pair[triples]] * k + local[triples], weights=triple_sum[triples],
                                 minlength=len(pairs) * k).reshape(len(pairs), k)
        subsets = ((np.arange(2 ** k)[None, :] >> np.arange(k)[:, None]) & 1).astype(np.float64)
        once = round_pass(per_region @ subsets)
        taps = csr_matrix((pair_tap[pairs], (index[pair_element[pairs]], np.arange(len(pairs)))),
                          shape=(len(elements), len(pairs)))
        return round_pass(taps @ once)

    def to(self, device) -> RegionPolynomial:
        self.features, self.matrix = self.features.to(device), self.matrix.to(device)
        return self

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        """[N, b] 0/1 visibility (float32) -> [elements, b] whole levels: one sparse product."""
        with_one = torch.cat([visible, torch.ones_like(visible[:1])])
        products = with_one[self.features[:, 0]]
        for j in range(1, self.features.shape[1]):
            products = products * with_one[self.features[:, j]]
        return torch.sparse.mm(self.matrix, products)

    @property
    def nbytes(self) -> int:
        return csr_bytes(self.matrix) + self.features.numel() * 8


def moebius(values: np.ndarray) -> np.ndarray:
    """[elements, 2**k] values per subset -> coefficients c with value(S) = sum of c(T) over subsets T of S."""
    c = values.copy()
    bits = int(np.log2(values.shape[1]))
    for j in range(bits):
        has = (np.arange(values.shape[1]) >> j) & 1 == 1
        c[:, has] -= c[:, np.flatnonzero(has) ^ (1 << j)]
    return c


def ragged(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """concatenate(arange(s, s + c) for s, c in zip(starts, counts)), vectorised."""
    total = int(counts.sum())
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(total) + shift


class RegionFirstPass:
    """Pillow's first pass over a region basis [elements, N]: for 0/1 visibility a lookup, exact.

    Most resized elements take all their taps from one region; for a 0/1 mask each of them is either that
    region's rounded value or 0, so one table of (region, value) rows times the mask, plus the fixed-point
    sums of the few elements on region borders, gives the whole pass in one gather. Fractional visibility
    takes the general fixed-point path.
    """

    def __init__(self, matrix):
        matrix = matrix.tocsr()
        self.general = FixedPointPass(matrix)
        self.shape = matrix.shape
        per_row = np.diff(matrix.indptr)
        mixed = np.flatnonzero(per_row > 1)
        single = np.flatnonzero(per_row == 1)
        region = np.zeros(matrix.shape[0], dtype=np.int64)
        value = np.zeros(matrix.shape[0], dtype=np.int64)
        region[single] = matrix.indices[matrix.indptr[single]]
        value[single] = round_pass(matrix.data[matrix.indptr[single]])
        keys, row_of = np.unique(region * 256 + value, return_inverse=True)
        row_of[mixed] = len(keys) + np.arange(len(mixed))
        self.table_region = torch.from_numpy(keys // 256)
        self.table_value = torch.from_numpy((keys % 256).astype(np.float32))
        self.row_of = torch.from_numpy(row_of.reshape(-1).astype(np.int64))
        self.mixed = FixedPointPass(matrix[mixed]) if len(mixed) else None

    def to(self, device) -> RegionFirstPass:
        self.general.to(device)
        self.table_region, self.table_value = self.table_region.to(device), self.table_value.to(device)
        self.row_of = self.row_of.to(device)
        if self.mixed is not None:
            self.mixed.to(device)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[N, b] visibility -> [elements, b] whole levels (float32), as `FixedPointPass`."""
        if not bool(((x == 0) | (x == 1)).all()):
            return self.general(x)
        table = self.table_value[:, None] * x[self.table_region]
        if self.mixed is not None:
            table = torch.cat([table, self.mixed(x)])
        return table[self.row_of]

    @property
    def nbytes(self) -> int:
        return self.general.nbytes + self.row_of.numel() * 8 + (self.mixed.nbytes if self.mixed else 0)


def resize_dense(images: torch.Tensor, in_size, across: FixedPointPass, down: FixedPointPass,
                  transposed: bool) -> torch.Tensor:
    """Pillow's resize of resized images [H * W * 3, b] (whole levels) -> [h, w, 3, b]."""
    (W, H), b = in_size, images.shape[1]
    x = images.reshape(H, W, 3, b)

    def along_rows(t):  # [H', W', 3, b] -> [h, W', 3, b]
        return down(t.reshape(t.shape[0], -1)).reshape(down.shape[0], *t.shape[1:])

    def along_columns(t):  # [H', W', 3, b] -> [H', w, 3, b]
        moved = t.transpose(0, 1).contiguous()
        return across(moved.reshape(moved.shape[0], -1)).reshape(across.shape[0], t.shape[0], *t.shape[2:]).transpose(
            0, 1)

    return along_columns(along_rows(x)) if transposed else along_rows(along_columns(x))


def csr_bytes(m: torch.Tensor) -> int:
    return int(m.values().numel() * m.values().element_size() + m.col_indices().numel() * 8
               + m.crow_indices().numel() * 8)
