"""Command line: `python -m workbench bench [--json PATH]`; the teaching model: `python -m workbench.toy`."""
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m workbench bench [--json PATH] [--shapes musicgen-small,tiny] ...\n"
              "       python -m workbench.toy {train,evaluate}   (the teaching model)")
        return 0
    if argv[0] == "bench":
        from .bench import main as bench_main
        return bench_main(argv[1:])
    print(f"unknown command {argv[0]!r}: try `python -m workbench bench`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
