r"""`python -m accelerated.ablation.probe`: what self-attention adds, measured without a GAN.

A supervised probe of the mechanism the paper claims: a classifier built from the discriminator's
own parts (`DBlock`, `SelfAttention`, spectral norm) must tell real Mirror twins from images whose
right half comes from another real image. Each half alone is real; only the agreement of the two
twins, 5R/8 px apart, tells them apart, so a network whose units cannot see both twins is at
chance unless attention carries the evidence across. The probe trains such classifiers at several
depths (receptive fields from "sees one twin" to "sees the whole image"), each with and without
one self-attention block after its first block, several seeds each, and reports held-out accuracy
with a one-sided Mann-Whitney test per depth, and where the attention layer looks.

Modules: `data` (the real and mismatched pairs), `model` (the classifier and its receptive
field), `train` (one classifier, one seed), `report` (the grid, its tests, table and figures).
"""
