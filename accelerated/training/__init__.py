"""Training SAGAN: the GAN step of the paper (`gan_step`), the run around it (`run`), and what a
run shows of itself (`observe`, `periodic_eval`, `metrics_log`, `attention_report`)."""
