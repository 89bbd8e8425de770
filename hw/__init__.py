"""The EIE accelerator in Amaranth HDL."""
