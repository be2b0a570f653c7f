#ifndef MXTIER_HASH_H
#define MXTIER_HASH_H

#include <stddef.h>
#include <stdint.h>

/* hash_fnv1a - FNV-1a over len bytes: the one hash the bounded tables share. */
static inline uint32_t
hash_fnv1a(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

#endif
