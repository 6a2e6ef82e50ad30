/* `duet-bench engine`: load time, prefill and decode tokens/s of the forward pass on a GGUF,
 * with the same synthetic prompt, greedy ids and top-k logits as
 * ../shared/bench/llamacpp-bench.sh prints for llama.cpp, so the two can be compared. */
#ifndef DUET_BENCH_ENGINE_H
#define DUET_BENCH_ENGINE_H

int bench_engine_main(int argc, char **argv);

#endif
