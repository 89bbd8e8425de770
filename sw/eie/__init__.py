"""The EIE contract (Han et al., ISCA 2016) in software: the configuration, the fixed-point
arithmetic, the per-PE memory images (packer), the golden model, the cycle model, load
balancing, the energy model and the paper's benchmark layers."""
