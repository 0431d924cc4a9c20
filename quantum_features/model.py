"""SO(3)-equivariant property network on orbital features (e3nn + torch-geometric).

Inputs (per molecule, a `torch_geometric` graph from `OrbitalFeatures.to_data`):
- node features ``node_attr`` (`NODE_IRREPS`: 14x0e+6x1o+6x2e) standardised per element
  (scalars: shift and scale; l > 0 channels: divided by their RMS norm, which keeps them
  equivariant), concatenated with a one-hot element code;
- edge features ``edge_attr`` (`EDGE_IRREPS`) squashed channel by channel,
  ``x ↦ x/σ · log(1 + |x|/σ) / (|x|/σ)`` with |x| the channel's norm (off-diagonal AO blocks
  span decades between bonded and 5 Å neighbours; a function of the norm keeps them
  equivariant), and the spherical harmonics (l ≤ 2) of the bond direction.

Interaction layer (`n_layers` of them): each edge i←j mixes the sender's hidden irreps with
learned edge irreps (a linear mix of the orbital edge irreps and the spherical harmonics)
in a depthwise ("uvu") tensor product whose weights come from an MLP of a Bessel radial
basis and the edge's scalar orbital features, times a smooth cutoff envelope; messages are
summed, mixed linearly, added to a linear self-connection and passed through a gated
nonlinearity (scalars: SiLU; l > 0: scaled by sigmoid gates) with a residual connection.

Read-outs (all equivariant by construction):
- energy (Hartree, extensive, Δ-learning): ``E = E_cheap + Σ_i (E_ref[Z_i] + s_E · ε_i)``;
  E_ref are per-element least-squares references fitted on the training set; with
  ``dispersion`` set (conformer models, e.g. "b3lyp-d3bj") the reference level's empirical
  dispersion energy is added as a fixed term (`quantum_features.dispersion`), forces included;
- HOMO, LUMO, gap (eV, intensive): ``y = a · y_cheap + b + s · Σ_i softmax(α_i) o_i``
  (attention pooling: frontier orbitals are localised; a, b start from a least-squares fit);
- dipole (Debye, l = 1): ``μ = μ_cheap + s_μ · Σ_i [δq_i (r_i − r̄) + δμ_i]`` with δq_i
  summing to zero per molecule (so μ does not depend on the origin) and δμ_i an l = 1
  output of the last layer. QM9 labels |μ|, so training fits the norm.

``use_orbital_features=False`` gives the geometry-only baseline: the same network fed only
element codes, distances and bond directions, with no cheap-method terms in the read-outs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn
from torch_geometric.utils import scatter, softmax

from quantum_features.dispersion import batch_dispersion_energy, dispersion_energy_and_gradient
from quantum_features.features import EDGE_IRREPS, NODE_IRREPS

__all__ = ["ELEMENTS", "TARGETS", "INTENSIVE_TARGETS", "ModelConfig", "OrbitalPropertyNet", "count_parameters",
           "cheap_intensive", "cheap_intensive_of", "element_counts", "gradient_outside_autograd",
           "target_mask"]

#: Atomic numbers the network has an element code for (the calculation's elements).
ELEMENTS: tuple[int, ...] = (1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 35, 53)
#: Target name -> unit of the network's output.
TARGETS: dict[str, str] = {"energy": "Hartree", "homo": "eV", "lumo": "eV", "gap": "eV", "dipole": "Debye"}
INTENSIVE_TARGETS: tuple[str, ...] = ("homo", "lumo", "gap")
HARTREE_TO_EV = 27.211386245988
_SH_IRREPS = o3.Irreps("1x0e + 1x1o + 1x2e")


@dataclass
class ModelConfig:
    """Size and inputs of an `OrbitalPropertyNet` (all lengths in Å)."""

    hidden_irreps: str = "32x0e + 8x1o + 4x2e"
    n_layers: int = 3
    n_radial: int = 8
    radial_hidden: int = 32
    edge_channels: int = 2
    readout_hidden: int = 32
    cutoff: float = 5.0
    dropout: float = 0.0
    use_orbital_features: bool = True
    dispersion: str | None = None  # e.g. "b3lyp-d3bj": added to the energy exactly (not learned)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        return options_from_dict(cls, values, "model")


def options_from_dict(cls: type, values: dict[str, Any], what: str):
    """``cls(**values)`` for a dataclass, naming unknown keys (typos in config files)."""
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {what} options: {', '.join(sorted(unknown))}")
    return cls(**values)


def _channel_index(irreps: o3.Irreps) -> torch.Tensor:
    """For every component of `irreps`, the index of the channel (one irrep copy) it is in."""
    index, channel = [], 0
    for mul, ir in irreps:
        for _ in range(mul):
            index += [channel] * ir.dim
            channel += 1
    return torch.tensor(index, dtype=torch.long)


def _scalar_mask(irreps: o3.Irreps) -> torch.Tensor:
    """Per component: is it a 0e scalar?"""
    return torch.cat([torch.full((mul * ir.dim,), ir == o3.Irrep("0e")) for mul, ir in irreps])


def _channel_norms(x: torch.Tensor, channel_of: torch.Tensor, n_channels: int) -> torch.Tensor:
    squares = torch.zeros(x.shape[0], n_channels, dtype=x.dtype, device=x.device)
    return squares.index_add_(1, channel_of, x * x).sqrt()


class _BesselBasis(nn.Module):
    """sin(nπr/c)/r radial basis times a smooth polynomial envelope that vanishes at c."""

    def __init__(self, n: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("frequencies", torch.arange(1, n + 1, dtype=torch.float32) * math.pi / cutoff)

    def envelope(self, r: torch.Tensor) -> torch.Tensor:
        x = (r / self.cutoff).clamp(max=1.0)
        return 1 - 10 * x**3 + 15 * x**4 - 6 * x**5  # C2-smooth, 1 at 0 and 0 at the cutoff

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.sin(r[:, None] * self.frequencies) / r[:, None].clamp(min=1e-6) * self.envelope(r)[:, None]


def _mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class _Interaction(nn.Module):
    def __init__(self, hidden: o3.Irreps, edge_irreps: o3.Irreps, n_edge_scalars: int, radial_hidden: int) -> None:
        super().__init__()
        wanted = {ir for _, ir in hidden}
        mid, instructions = [], []
        for i1, (mul1, ir1) in enumerate(hidden):
            for i2, (_, ir2) in enumerate(edge_irreps):
                for ir_out in ir1 * ir2:
                    if ir_out in wanted:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul1, ir_out))
        self.tp = o3.TensorProduct(
            hidden, edge_irreps, o3.Irreps(mid), instructions, shared_weights=False, internal_weights=False
        )
        self.radial = _mlp([n_edge_scalars, radial_hidden, radial_hidden, self.tp.weight_numel])
        scalars = o3.Irreps([(mul, ir) for mul, ir in hidden if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in hidden if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        self.gate = Gate(scalars, [nn.functional.silu], gates, [torch.sigmoid], gated)
        self.mix = o3.Linear(self.tp.irreps_out, self.gate.irreps_in)
        self.self_connection = o3.Linear(hidden, self.gate.irreps_in)

    def forward(self, h, edge_index, edge_attr, edge_scalars, envelope, avg_neighbors: float):
        source, target = edge_index
        weights = self.radial(edge_scalars) * envelope[:, None]
        messages = self.tp(h[source], edge_attr, weights)
        summed = scatter(messages, target, dim=0, dim_size=h.shape[0], reduce="sum") / math.sqrt(avg_neighbors)
        return h + self.gate(self.mix(summed) + self.self_connection(h))


class OrbitalPropertyNet(nn.Module):
    """Predicts energy (Hartree), HOMO/LUMO/gap (eV) and the dipole vector (Debye).

    Call `fit_statistics` on training graphs (with targets) before training: it sets the
    input standardisation and the target references that the read-outs build on. The
    statistics are buffers, so they travel with the checkpoint.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.hidden = hidden = o3.Irreps(config.hidden_irreps).simplify()
        if not any(ir.l == 0 for _, ir in hidden) or not any(ir == o3.Irrep("1o") for _, ir in hidden):
            raise ValueError(f"hidden_irreps {config.hidden_irreps!r} need 0e and 1o parts")
        n_elements = len(ELEMENTS)
        z_to_index = torch.full((max(ELEMENTS) + 1,), -1, dtype=torch.long)
        z_to_index[list(ELEMENTS)] = torch.arange(n_elements)
        self.register_buffer("z_to_index", z_to_index)
        self.radial_basis = _BesselBasis(config.n_radial, config.cutoff)

        orbital = config.use_orbital_features
        n_node_channels = NODE_IRREPS.num_irreps
        n_edge_channels = EDGE_IRREPS.num_irreps
        # Input standardisation (set by fit_statistics; identity until then).
        self.register_buffer("node_shift", torch.zeros(n_elements, NODE_IRREPS.dim))
        self.register_buffer("node_scale", torch.ones(n_elements, n_node_channels))
        self.register_buffer("edge_sigma", torch.ones(n_edge_channels))
        self.register_buffer("node_channel_of", _channel_index(NODE_IRREPS))
        self.register_buffer("edge_channel_of", _channel_index(EDGE_IRREPS))
        # Target references.
        self.register_buffer("energy_reference", torch.zeros(n_elements, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(0.01, dtype=torch.float64))
        self.register_buffer("intensive_scale", torch.ones(len(INTENSIVE_TARGETS)))
        self.register_buffer("dipole_scale", torch.tensor(1.0))
        self.register_buffer("avg_neighbors", torch.tensor(10.0))
        self.register_buffer("trained_elements", torch.zeros(n_elements, dtype=torch.bool))
        # Which TARGETS the read-out was trained on (set by fit_statistics / mark_trained_targets):
        # the heads of the others give numbers that mean nothing, and predict_properties leaves
        # them out. Files written before this buffer existed come from all-target QM9 training.
        self.register_buffer("trained_targets", torch.ones(len(TARGETS), dtype=torch.bool))
        self._register_load_state_dict_pre_hook(_default_trained_targets)
        self.intensive_coef = nn.Parameter(torch.ones(len(INTENSIVE_TARGETS)) * float(orbital))
        self.intensive_shift = nn.Parameter(torch.zeros(len(INTENSIVE_TARGETS)))

        node_in = o3.Irreps(f"{n_elements}x0e") + (NODE_IRREPS if orbital else o3.Irreps(""))
        self.embed = o3.Linear(node_in, hidden)
        edge_in = _SH_IRREPS + (EDGE_IRREPS if orbital else o3.Irreps(""))
        m = config.edge_channels
        edge_irreps = o3.Irreps(f"{m}x0e + {m}x1o + {m}x1e + {m}x2e") if orbital else _SH_IRREPS
        self.edge_mix = o3.Linear(edge_in, edge_irreps) if orbital else None
        n_edge_scalars = config.n_radial + (EDGE_IRREPS.count("0e") if orbital else 0)
        self.layers = nn.ModuleList(
            _Interaction(hidden, edge_irreps, n_edge_scalars, config.radial_hidden) for _ in range(config.n_layers)
        )
        n_scalars = hidden.count("0e")
        # Per atom: ε, (o, α) for each intensive target, δq.
        self.scalar_head = _mlp([n_scalars, config.readout_hidden, 2 + 2 * len(INTENSIVE_TARGETS)], config.dropout)
        self.vector_head = o3.Linear(hidden, o3.Irreps("1x1o"))
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self._n_scalars = n_scalars

    # ------------------------------------------------------------------ statistics
    @property
    def target_names(self) -> tuple[str, ...]:
        """The `TARGETS` this model was trained to predict (see `mark_trained_targets`)."""
        return tuple(t for t, trained in zip(TARGETS, self.trained_targets.tolist()) if trained)

    @torch.no_grad()
    def mark_trained_targets(self, names) -> None:
        """Record that the read-out is trained for `names` (a subset of `TARGETS`) only."""
        self.trained_targets.copy_(target_mask(names))

    @torch.no_grad()
    def fit_statistics(self, graphs: list, targets: dict[str, np.ndarray]) -> None:
        """Set input standardisation and target references from training graphs, and record
        the keys of `targets` as the trained targets (`target_names`).

        Args:
            graphs: `Data` objects from `OrbitalFeatures.to_data`.
            targets: name -> [n_graphs] array in `TARGETS` units (NaN = missing).
        """
        self.mark_trained_targets(tuple(targets))
        elements = torch.cat([self._element_index(g.z) for g in graphs])
        self.trained_elements.zero_()
        self.trained_elements[elements.unique()] = True
        self.avg_neighbors.fill_(float(np.mean([g.edge_index.shape[1] / g.z.shape[0] for g in graphs])))
        if self.config.use_orbital_features:
            self._fit_input_statistics(graphs, elements)
        counts = element_counts(graphs)
        n_atoms = counts.sum(axis=1)
        orbital = self.config.use_orbital_features

        if "energy" in targets:
            energy = np.asarray(targets["energy"], dtype=np.float64)
            delta = energy - self.baseline_energies(graphs)
            ok = np.isfinite(delta)
            reference = np.zeros(len(ELEMENTS))
            seen = counts[ok].sum(axis=0) > 0
            reference[seen] = np.linalg.lstsq(counts[ok][:, seen], delta[ok], rcond=None)[0]
            residual = delta[ok] - counts[ok] @ reference
            self.energy_reference.copy_(torch.from_numpy(reference))
            self.energy_scale.fill_(max(float(np.std(residual / np.sqrt(n_atoms[ok]))), 1e-6))
        for k, name in enumerate(INTENSIVE_TARGETS):
            if name not in targets:
                continue
            y = np.asarray(targets[name], dtype=np.float64)
            cheap = cheap_intensive_of(graphs, name) if orbital else np.zeros_like(y)
            ok = np.isfinite(y)
            if orbital:
                design = np.stack([cheap[ok], np.ones(ok.sum())], axis=1)
                coef, shift = np.linalg.lstsq(design, y[ok], rcond=None)[0]
            else:
                coef, shift = 0.0, float(np.mean(y[ok]))
            self.intensive_coef[k] = float(coef)
            self.intensive_shift[k] = float(shift)
            self.intensive_scale[k] = max(float(np.std(y[ok] - coef * cheap[ok] - shift)), 1e-6)
        if "dipole" in targets:
            y = np.asarray(targets["dipole"], dtype=np.float64)
            cheap = np.array([float(g.dipole_cheap.norm()) for g in graphs]) if orbital else np.zeros_like(y)
            ok = np.isfinite(y)
            self.dipole_scale.fill_(max(float(np.std(y[ok] - cheap[ok])), 1e-3))

    def baseline_energies(self, graphs: list) -> np.ndarray:
        """The fixed (not learned) part of each graph's energy (Hartree): the cheap level's
        energy (orbital models) plus the dispersion term (when ``config.dispersion`` is set)."""
        return self.baseline_energies_and_gradients(graphs, gradients=False)[0]

    def baseline_energies_and_gradients(self, graphs: list, gradients: bool = True
                                        ) -> tuple[np.ndarray, list[torch.Tensor] | None]:
        """`baseline_energies` (Hartree) and, with `gradients`, their gradients (Hartree/Å,
        [N, 3] per graph): the cheap level's analytic gradient (`gradient_outside_autograd`)
        plus the dispersion's. The dispersion is computed once per graph for both."""
        energies = np.zeros(len(graphs))
        derivatives = [] if gradients else None
        for i, g in enumerate(graphs):
            if self.config.use_orbital_features:
                energies[i] += float(g.energy_cheap)
            gradient = gradient_outside_autograd(self.config, g).clone() if gradients else None
            if self.config.dispersion:
                energy, dispersion_gradient = self._dispersion_of(g)
                energies[i] += energy
                if gradients:
                    gradient += torch.as_tensor(dispersion_gradient, dtype=gradient.dtype)
            if gradients:
                derivatives.append(gradient)
        return energies, derivatives

    def _dispersion_of(self, graph: Any) -> tuple[float, np.ndarray]:
        """(E_dispersion Hartree, its gradient Hartree/Å) of one graph's structure."""
        return dispersion_energy_and_gradient(graph.z.numpy(), graph.pos.double().numpy(), self.config.dispersion)

    @torch.no_grad()
    def zero_energy_correction(self) -> None:
        """Zero the read-out of the per-atom energy correction ε (weights and bias), keeping
        the learned representation: the energy becomes the fixed baseline plus the per-element
        references, and fine-tuning starts from there (a correction learned for another level
        or for equilibrium geometries can make relative conformer energies worse)."""
        last = self.scalar_head[-1]
        last.weight[0].zero_()
        last.bias[0].zero_()

    def fit_new_element_statistics(self, graphs: list) -> list[int]:
        """Node-input shift and scale for the elements of `graphs` this model was not trained on.

        For fine-tuning a trained model on new chemistry (e.g. S and Cl after QM9): without this
        their orbital features would enter the network unnormalised. The statistics of the
        elements it knows, and the edge scales, stay as trained (the weights rely on them).

        Returns:
            The atomic numbers whose statistics were fitted.
        """
        elements = torch.cat([self._element_index(g.z) for g in graphs])
        new = [e for e in elements.unique().tolist() if not bool(self.trained_elements[e])]
        if not new or not self.config.use_orbital_features:  # a geometry-only model has no node inputs to scale
            return []
        self._fit_node_statistics(graphs, elements, new)
        return [ELEMENTS[e] for e in new]

    def _fit_input_statistics(self, graphs: list, elements: torch.Tensor) -> None:
        self._fit_node_statistics(graphs, elements, elements.unique().tolist())
        edge_norms = torch.cat(
            [_channel_norms(g.edge_attr.double(), self.edge_channel_of, EDGE_IRREPS.num_irreps) for g in graphs]
        )
        sigma = torch.stack(
            [c[c > 1e-10].median() if (c > 1e-10).any() else torch.tensor(1.0, dtype=c.dtype) for c in edge_norms.T]
        )
        self.edge_sigma.copy_(sigma.float())

    def _fit_node_statistics(self, graphs: list, elements: torch.Tensor, fit: list[int]) -> None:
        """Per-element shift (scalars only) and per-channel scale of the node inputs of `fit`."""
        nodes = torch.cat([g.node_attr for g in graphs]).double()
        scalar = _scalar_mask(NODE_IRREPS)
        for e in fit:
            rows = elements == e
            mean = nodes[rows].mean(0) * scalar  # only scalars are shifted (equivariance)
            self.node_shift[e] = mean.float()
            # RMS of each channel's norm after the shift: the std for scalars.
            centred = _channel_norms(nodes[rows] - mean, self.node_channel_of, NODE_IRREPS.num_irreps)
            spread = centred.pow(2).mean(0).sqrt()
            self.node_scale[e] = torch.where(spread > 1e-8, spread, torch.ones_like(spread)).float()

    def _element_index(self, z: torch.Tensor) -> torch.Tensor:
        index = self.z_to_index[z.clamp(max=len(self.z_to_index) - 1)]
        index[z >= len(self.z_to_index)] = -1
        if (index < 0).any():
            bad = sorted(set(z[index < 0].tolist()))
            raise ValueError(f"atomic numbers {bad} have no element code (supported: {ELEMENTS})")
        return index

    def untrained_elements(self, z: torch.Tensor) -> list[int]:
        """Atomic numbers in `z` that the training data did not contain."""
        index = self._element_index(z)
        return sorted(set(z[~self.trained_elements[index]].tolist()))

    # ------------------------------------------------------------------ forward
    def forward(self, batch) -> dict[str, torch.Tensor]:
        """Predictions for a batch: ``energy`` [B] (Hartree, float64), ``homo``, ``lumo``,
        ``gap`` [B] (eV), ``dipole`` [B, 3] and ``dipole_norm`` [B] (Debye)."""
        orbital = self.config.use_orbital_features
        element = self._element_index(batch.z)
        graph = batch.batch if hasattr(batch, "batch") and batch.batch is not None else torch.zeros_like(batch.z)
        n_graphs = int(graph.max()) + 1 if graph.numel() else 0
        one_hot = nn.functional.one_hot(element, len(ELEMENTS)).to(batch.pos.dtype)
        source, target = batch.edge_index
        vectors = batch.pos[target] - batch.pos[source]
        lengths = vectors.norm(dim=1)
        sh = o3.spherical_harmonics(_SH_IRREPS, vectors, normalize=True, normalization="component")
        rbf = self.radial_basis(lengths)
        envelope = self.radial_basis.envelope(lengths)
        if orbital:
            nodes = (batch.node_attr - self.node_shift[element]) / self.node_scale[element][:, self.node_channel_of]
            edges = self._squash(batch.edge_attr)
            h = self.embed(torch.cat([one_hot, nodes], dim=1))
            edge_attr = self.edge_mix(torch.cat([sh, edges], dim=1))
            edge_scalars = torch.cat([rbf, edges[:, : EDGE_IRREPS.count("0e")]], dim=1)
        else:
            h = self.embed(one_hot)
            edge_attr, edge_scalars = sh, rbf
        for layer in self.layers:
            h = layer(h, batch.edge_index, edge_attr, edge_scalars, envelope, float(self.avg_neighbors))

        atom_out = self.scalar_head(self.dropout(h[:, : self._n_scalars]))
        epsilon, charge = atom_out[:, 0], atom_out[:, -1]
        out: dict[str, torch.Tensor] = {}
        atomic_energy = self.energy_reference[element] + self.energy_scale * epsilon.double()
        energy = scatter(atomic_energy, graph, dim=0, dim_size=n_graphs, reduce="sum")
        out["energy"] = energy + batch.energy_cheap.double().view(-1) if orbital else energy
        if self.config.dispersion:
            out["energy"] = out["energy"] + batch_dispersion_energy(batch.pos, batch.z, graph, n_graphs,
                                                                    self.config.dispersion)
        for k, name in enumerate(INTENSIVE_TARGETS):
            value, logit = atom_out[:, 1 + 2 * k], atom_out[:, 2 + 2 * k]
            pooled = scatter(softmax(logit, graph, num_nodes=h.shape[0]) * value, graph, 0, dim_size=n_graphs)
            cheap = (cheap_intensive(batch.homo_cheap.view(-1), batch.lumo_cheap.view(-1), name) if orbital
                     else torch.zeros_like(pooled))
            out[name] = self.intensive_coef[k] * cheap + self.intensive_shift[k] + self.intensive_scale[k] * pooled
        centred_charge = charge - scatter(charge, graph, 0, dim_size=n_graphs, reduce="mean")[graph]
        centre = scatter(batch.pos, graph, 0, dim_size=n_graphs, reduce="mean")[graph]
        # e3nn 0.6 orders l = 1 components (x, y, z) like positions (checked in the tests).
        atomic_dipole = self.vector_head(h)
        dipole = scatter(centred_charge[:, None] * (batch.pos - centre) + atomic_dipole, graph, 0, dim_size=n_graphs)
        dipole = self.dipole_scale * dipole
        if orbital:
            dipole = dipole + batch.dipole_cheap.view(-1, 3)
        out["dipole"] = dipole
        out["dipole_norm"] = dipole.norm(dim=1)
        return out

    def _squash(self, edge_attr: torch.Tensor) -> torch.Tensor:
        scaled = edge_attr / self.edge_sigma[self.edge_channel_of]
        norms = _channel_norms(scaled, self.edge_channel_of, EDGE_IRREPS.num_irreps)
        factor = torch.where(norms > 1e-6, torch.log1p(norms) / norms.clamp(min=1e-6), torch.ones_like(norms))
        return scaled * factor[:, self.edge_channel_of]


def target_mask(names) -> torch.Tensor:
    """Boolean mask over `TARGETS` of `names` (the ``trained_targets`` buffer's format)."""
    unknown = set(names) - set(TARGETS)
    if unknown or not names:
        raise ValueError(f"targets must be a non-empty subset of {tuple(TARGETS)}, got {tuple(names)}")
    return torch.tensor([t in names for t in TARGETS])


def _default_trained_targets(state_dict: dict, prefix: str, *_: Any) -> None:
    """Load hook: a state dict from before ``trained_targets`` existed (an all-target QM9 model)."""
    state_dict.setdefault(prefix + "trained_targets", torch.ones(len(TARGETS), dtype=torch.bool))


def gradient_outside_autograd(config: ModelConfig, data: Any) -> torch.Tensor:
    """The part of a model's energy gradient (Hartree/Å, [N, 3]) that autograd cannot see.

    An orbital model's energy contains the cheap level's, E_cheap, which enters as a fixed input
    (the orbital features are not differentiated), so its gradient is the analytic one stored by
    ``featurize(..., gradient=True)``. A geometry-only model's energy is all network (plus any
    dispersion, computed in torch): nothing is outside autograd, the result is zero.

    Raises:
        ValueError: an orbital model and a graph featurised without ``gradient=True``.
    """
    if not config.use_orbital_features:
        return torch.zeros_like(data.pos)
    if torch.isnan(data.gradient_cheap).any():
        raise ValueError("forces need graphs featurised with gradient=True (gradient_cheap is NaN)")
    return data.gradient_cheap


def cheap_intensive(homo_hartree, lumo_hartree, name: str):
    """The cheap method's HOMO, LUMO or gap (``name``) in eV from orbital energies in Hartree
    (numpy arrays or torch tensors)."""
    homo, lumo = homo_hartree * HARTREE_TO_EV, lumo_hartree * HARTREE_TO_EV
    return {"homo": homo, "lumo": lumo, "gap": lumo - homo}[name]


def _graph_orbital_energies(graphs: list) -> tuple[np.ndarray, np.ndarray]:
    return np.array([float(g.homo_cheap) for g in graphs]), np.array([float(g.lumo_cheap) for g in graphs])


def cheap_intensive_of(graphs: list, name: str) -> np.ndarray:
    """`cheap_intensive` for a list of graphs (eV)."""
    return cheap_intensive(*_graph_orbital_energies(graphs), name)


def element_counts(graphs: list) -> np.ndarray:
    """[n_graphs, len(ELEMENTS)] number of atoms of each element per graph."""
    column = {z: i for i, z in enumerate(ELEMENTS)}
    counts = np.zeros((len(graphs), len(ELEMENTS)))
    for row, g in enumerate(graphs):
        for z in g.z.tolist():
            counts[row, column[z]] += 1
    return counts


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

