"""Train a vqc model: python train.py [overrides], python train.py -m [sweep].

See docs/TRAINING.md."""

from vqc.cli.train import main

if __name__ == "__main__":
    main()
