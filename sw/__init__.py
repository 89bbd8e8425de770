"""Deep Compression, the EIE storage format, the golden model and the cycle model (pure software)."""
