r"""A readable NumPy reference of SAGAN's equations (Zhang et al., ICML 2019).

One file per idea, read top to bottom next to the paper:

- `reference.attention`: the self-attention block, eqs. (1)-(3), forward and backward;
- `reference.spectral_norm`: spectral normalisation by power iteration (Miyato et al. 2018, Alg. 1);
- `reference.hinge`: the hinge adversarial loss, eq. (4), forward and backward;
- `reference.ttur`: the two time-scale update rule: Adam with beta1 = 0 and separate learning
  rates for D and G (Heusel et al. 2017).

Everything is float64 NumPy, NCHW like PyTorch; a 1x1 convolution is an (out, in) matrix.
"""
