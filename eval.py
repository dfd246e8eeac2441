"""Test a checkpoint or an inspector: python eval.py ckpt_path=... | inspector=...

See docs/TRAINING.md."""

from vqc.cli.eval import main

if __name__ == "__main__":
    main()
