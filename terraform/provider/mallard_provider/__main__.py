"""Entry point Terraform starts (through ../terraform-provider-mallard): serve the plugin protocol."""

from __future__ import annotations

from tf.runner import run_provider

from mallard_provider.provider import MallardProvider


def main() -> None:
    run_provider(MallardProvider())


if __name__ == "__main__":
    main()
