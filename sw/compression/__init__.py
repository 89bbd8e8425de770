"""Deep Compression (Han, Mao, Dally, ICLR 2016): data, models, training, pruning, trained
quantization, Huffman coding, the compressed model file and the pipeline that joins them."""
