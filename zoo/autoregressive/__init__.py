"""Autoregressive models: p(x) = prod_i p(x_i | x_<i) over discrete symbols
(:class:`~zoo.autoregressive.base.AutoregressiveModel`), with PixelCNN, Gated
PixelCNN and PixelCNN++ on images."""
