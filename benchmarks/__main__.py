"""`python -m benchmarks [--json PATH] ...`: the workbench benchmark (see benchmarks.bench);
`python -m benchmarks map [--browser]`: the map's redraw after a colour-by change (benchmarks.bench_map);
`python -m benchmarks kernel`: the kernel's decode loop over transformers' generate (benchmarks.bench_kernel)."""
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["map"]:
        from benchmarks.bench_map import main as map_main
        sys.exit(map_main(sys.argv[2:]))
    if sys.argv[1:2] == ["kernel"]:
        from benchmarks.bench_kernel import main as kernel_main
        sys.exit(kernel_main(sys.argv[2:]))
    from benchmarks.bench import main
    sys.exit(main())
