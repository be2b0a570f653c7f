/*
 * fuzz.h - what the libFuzzer harnesses share: an invariant check that
 * aborts with a message (so libFuzzer keeps the input as a crash), and
 * the fuzzer-chosen splitting of one input into reads.
 *
 * Every harness asserts properties of the parser's output, not only that
 * it does not crash: ASan and UBSan catch memory and arithmetic faults,
 * FUZZ_CHECK catches a parser that returns something it must never return.
 */
#ifndef MXTIER_FUZZ_H
#define MXTIER_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* FUZZ_CHECK - an invariant: on violation print it and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...) do {						\
	if (!(cond)) {								\
		fprintf(stderr, "invariant violated (%s:%d): %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__);					\
		fputc('\n', stderr);						\
		abort();							\
	}									\
} while (0)

/*
 * struct fuzz_splitter - read lengths drawn from one fuzzer-chosen byte, so
 * a mutation of that byte alone replays the same bytes in other reads: the
 * low 3 bits pick the largest read (1 byte .. 4 KiB), the rest seed the
 * sequence. A TCP peer chooses its segment sizes; so does the fuzzer.
 */
struct fuzz_splitter {
	uint32_t	state;
	size_t		max_read;
};

static inline void
fuzz_splitter_init(struct fuzz_splitter *sp, uint8_t control)
{
	static const size_t max_reads[8] = { 1, 2, 3, 7, 64, 999, 1001, 4096 };

	sp->state = 0x9e3779b9u ^ ((uint32_t)control * 2654435761u);
	sp->max_read = max_reads[control & 7];
}

/* fuzz_splitter_next - the length of the next read, 1..max_read (xorshift32). */
static inline size_t
fuzz_splitter_next(struct fuzz_splitter *sp)
{
	sp->state ^= sp->state << 13;
	sp->state ^= sp->state >> 17;
	sp->state ^= sp->state << 5;
	return 1 + (size_t)(sp->state % sp->max_read);
}

/* fuzz_crlf_clean - every CR is followed by LF, every LF preceded by CR, no NUL. */
static inline bool
fuzz_crlf_clean(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\0')
			return false;
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
