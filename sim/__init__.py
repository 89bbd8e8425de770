"""cocotb testbenches that verify the generated RTL against the golden model."""
