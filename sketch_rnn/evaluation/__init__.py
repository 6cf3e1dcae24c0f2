"""Evaluation: what a trained model is worth, in one place.

`losses` (the paper's loss terms over a split; the trainer validates with it), `retrieval`
(how much of a sketch its latent code keeps: ret@k, active units, KL in nats) and `report`
(`sketch-rnn evaluate`: a run's losses and latent metrics on a split). `losses` is pure model
and data code and sits below the training layer; `retrieval` and `report` use the sampler and
`training.runs` and sit above generation (ARCHITECTURE.md, "Layers").
"""
