#include "auth/ed25519.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"

/* ---- the field GF(p), p = 2^255 - 19 ----
 *
 * An element is five 64-bit limbs in radix 2^51: l0 + l1 2^51 + ... +
 * l4 2^204. The value may exceed p; only fe_tobytes reduces it fully. Two
 * bounds keep every step from overflowing:
 *   - "carried": limbs under 2^52. Every function returns carried limbs
 *     (except the lazy ones below) and every function accepts them.
 *   - fe_mul and fe_sq also accept limbs under 2^54: a limb product is then
 *     under 2^108, 19 times a limb under 2^58.3, the five-term column sums
 *     stay under 2^115 in their 128-bit accumulators, and the carry out of
 *     the top column, times 19, still fits in 64 bits.
 * fe_add_lazy and fe_sub_lazy skip the carry and return limbs under 2^54
 * (from a carried subtrahend and summands or minuend under 2^53); their
 * results may only be multiplied. Point addition, the hot path, uses them. */
typedef uint64_t fe[5];
typedef unsigned __int128 u128;

#define MASK51 ((UINT64_C(1) << 51) - 1)

static void fe_set(fe r, uint64_t v) { /* v < 2^51 */
    r[0] = v;
    r[1] = r[2] = r[3] = r[4] = 0;
}

/* Moves each limb's bits above 51 into the next limb; the top limb's stand
 * for multiples of 2^255, which is 19 mod p. For limbs under 2^55 all limbs
 * end under 2^51, except l0 under 2^51 + 2^9. */
static void fe_carry(fe r) {
    for (int i = 0; i < 4; i++) {
        r[i + 1] += r[i] >> 51;
        r[i] &= MASK51;
    }
    uint64_t c = r[4] >> 51;
    r[4] &= MASK51;
    r[0] += 19 * c;
}

static void fe_add(fe r, const fe a, const fe b) {
    for (int i = 0; i < 5; i++) r[i] = a[i] + b[i];
    fe_carry(r);
}

/* a - b computed as a + 4p - b: 4p's limbs (2^53 - 76, then 2^53 - 4) are
 * larger than any limb of b, so nothing wraps around. */
static void fe_sub(fe r, const fe a, const fe b) {
    r[0] = a[0] + ((UINT64_C(1) << 53) - 76) - b[0];
    for (int i = 1; i < 5; i++) r[i] = a[i] + ((UINT64_C(1) << 53) - 4) - b[i];
    fe_carry(r);
}

static void fe_add_lazy(fe r, const fe a, const fe b) {
    for (int i = 0; i < 5; i++) r[i] = a[i] + b[i];
}

static void fe_sub_lazy(fe r, const fe a, const fe b) {
    r[0] = a[0] + ((UINT64_C(1) << 53) - 76) - b[0];
    for (int i = 1; i < 5; i++) r[i] = a[i] + ((UINT64_C(1) << 53) - 4) - b[i];
}

static void fe_neg(fe r, const fe a) {
    fe zero = {0, 0, 0, 0, 0};
    fe_sub(r, zero, a);
}

/* Carries five 128-bit column sums (column i has weight 2^(51 i)) into r.
 * Callers keep t4 under 2^110.4, so the carry out of it times 19 fits.
 * Inlined: passing ten 64-bit halves to a call costs more than the work. */
__attribute__((always_inline)) static inline void fe_reduce_wide(fe r, u128 t0, u128 t1, u128 t2,
                                                                  u128 t3, u128 t4) {
    t1 += t0 >> 51;
    t2 += t1 >> 51;
    t3 += t2 >> 51;
    t4 += t3 >> 51;
    r[0] = ((uint64_t)t0 & MASK51) + 19 * (uint64_t)(t4 >> 51);
    r[1] = ((uint64_t)t1 & MASK51) + (r[0] >> 51);
    r[0] &= MASK51;
    r[2] = (uint64_t)t2 & MASK51;
    r[3] = (uint64_t)t3 & MASK51;
    r[4] = (uint64_t)t4 & MASK51;
}

/* Schoolbook product; a limb product of weight 2^255 or more wraps around
 * to weight/2^255 times 19. r may alias a or b. */
static void fe_mul(fe r, const fe a, const fe b) {
    uint64_t b1 = 19 * b[1], b2 = 19 * b[2], b3 = 19 * b[3], b4 = 19 * b[4];
    u128 t0 = (u128)a[0] * b[0] + (u128)a[1] * b4 + (u128)a[2] * b3 + (u128)a[3] * b2 +
              (u128)a[4] * b1;
    u128 t1 = (u128)a[0] * b[1] + (u128)a[1] * b[0] + (u128)a[2] * b4 + (u128)a[3] * b3 +
              (u128)a[4] * b2;
    u128 t2 = (u128)a[0] * b[2] + (u128)a[1] * b[1] + (u128)a[2] * b[0] + (u128)a[3] * b4 +
              (u128)a[4] * b3;
    u128 t3 = (u128)a[0] * b[3] + (u128)a[1] * b[2] + (u128)a[2] * b[1] + (u128)a[3] * b[0] +
              (u128)a[4] * b4;
    u128 t4 = (u128)a[0] * b[4] + (u128)a[1] * b[3] + (u128)a[2] * b[2] + (u128)a[3] * b[1] +
              (u128)a[4] * b[0];
    fe_reduce_wide(r, t0, t1, t2, t3, t4);
}

/* fe_mul(r, a, a) with the symmetric products counted once, doubled. */
static void fe_sq(fe r, const fe a) {
    uint64_t d0 = 2 * a[0], d1 = 2 * a[1], d2 = 2 * a[2], d3 = 2 * a[3];
    uint64_t a3_19 = 19 * a[3], a4_19 = 19 * a[4];
    u128 t0 = (u128)a[0] * a[0] + (u128)d1 * a4_19 + (u128)d2 * a3_19;
    u128 t1 = (u128)d0 * a[1] + (u128)d2 * a4_19 + (u128)a[3] * a3_19;
    u128 t2 = (u128)d0 * a[2] + (u128)a[1] * a[1] + (u128)d3 * a4_19;
    u128 t3 = (u128)d0 * a[3] + (u128)d1 * a[2] + (u128)a[4] * a4_19;
    u128 t4 = (u128)d0 * a[4] + (u128)d1 * a[3] + (u128)a[2] * a[2];
    fe_reduce_wide(r, t0, t1, t2, t3, t4);
}

/* r = a^(2^n) */
static void fe_sqn(fe r, const fe a, int n) {
    fe_sq(r, a);
    while (--n > 0) fe_sq(r, r);
}

/* Bits 0..254 of s, little-endian; bit 255 (a point encoding's sign of x)
 * is ignored. Values from p to 2^255 - 1 are accepted (and equal v - p). */
static uint64_t load64(const unsigned char *s) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | s[i];
    return v;
}

static void fe_frombytes(fe r, const unsigned char s[32]) {
    r[0] = load64(s) & MASK51;
    r[1] = (load64(s + 6) >> 3) & MASK51;
    r[2] = (load64(s + 12) >> 6) & MASK51;
    r[3] = (load64(s + 19) >> 1) & MASK51;
    r[4] = (load64(s + 24) >> 12) & MASK51;
}

/* The unique representative in [0, p), little-endian; bit 255 is 0. */
static void fe_tobytes(unsigned char s[32], const fe a) {
    fe t;
    memcpy(t, a, sizeof t);
    fe_carry(t); /* now t < 2^255 + 2^9 < 2p */
    /* q = 1 if t >= p, that is if t + 19 reaches 2^255 */
    uint64_t q = (t[0] + 19) >> 51;
    for (int i = 1; i < 5; i++) q = (t[i] + q) >> 51;
    /* t - qp = t + 19q - q 2^255: add 19q, carry, drop bit 255. */
    t[0] += 19 * q;
    for (int i = 0; i < 4; i++) {
        t[i + 1] += t[i] >> 51;
        t[i] &= MASK51;
    }
    t[4] &= MASK51;
    uint64_t w[4] = {t[0] | t[1] << 51, t[1] >> 13 | t[2] << 38, t[2] >> 26 | t[3] << 25,
                     t[3] >> 39 | t[4] << 12};
    for (int i = 0; i < 32; i++) s[i] = (unsigned char)(w[i / 8] >> (8 * (i % 8)));
}

static int fe_iszero(const fe a) {
    unsigned char s[32], z = 0;
    fe_tobytes(s, a);
    for (int i = 0; i < 32; i++) z |= s[i];
    return z == 0;
}

static int fe_equal(const fe a, const fe b) {
    fe d;
    fe_sub(d, a, b);
    return fe_iszero(d);
}

/* RFC 8032 calls x "negative" when its representative is odd. */
static int fe_isodd(const fe a) {
    unsigned char s[32];
    fe_tobytes(s, a);
    return s[0] & 1;
}

/* z^(2^252 - 3) = z^((p-5)/8), the exponent of the square root in point
 * decoding. Each step builds z^(2^k - 1) for a larger k by squaring k' times
 * and multiplying by z^(2^k' - 1). */
static void fe_pow22523(fe r, const fe z) {
    fe z2, z9, x5, x10, x20, x50, x100, t;
    fe_sq(z2, z);
    fe_sqn(t, z2, 2);
    fe_mul(z9, t, z);
    fe_mul(t, z9, z2); /* z^11 */
    fe_sq(t, t);
    fe_mul(x5, t, z9); /* z^31 = z^(2^5 - 1) */
    fe_sqn(t, x5, 5);
    fe_mul(x10, t, x5);
    fe_sqn(t, x10, 10);
    fe_mul(x20, t, x10);
    fe_sqn(t, x20, 20);
    fe_mul(t, t, x20); /* 2^40 - 1 */
    fe_sqn(t, t, 10);
    fe_mul(x50, t, x10);
    fe_sqn(t, x50, 50);
    fe_mul(x100, t, x50);
    fe_sqn(t, x100, 100);
    fe_mul(t, t, x100); /* 2^200 - 1 */
    fe_sqn(t, t, 50);
    fe_mul(t, t, x50); /* 2^250 - 1 */
    fe_sqn(t, t, 2);
    fe_mul(r, t, z); /* 2^252 - 4 + 1 */
}

/* 1/z = z^(p-2) = z^(2^255 - 21) = (z^(2^252 - 3))^8 * z^3. */
static void fe_invert(fe r, const fe z) {
    fe t, z3;
    fe_pow22523(t, z);
    fe_sqn(t, t, 3);
    fe_sq(z3, z);
    fe_mul(z3, z3, z);
    fe_mul(r, t, z3);
}

/* ---- points on -x^2 + y^2 = 1 + d x^2 y^2 ----
 *
 * ge: extended coordinates (Hisil, Wong, Carter, Dawson 2008), x = X/Z,
 * y = Y/Z, xy = T/Z. ge_pre: an affine point stored as (y + x, y - x,
 * 2d x y), the three values mixed addition multiplies by. The addition
 * formulas used are complete on this curve (a = -1 is a square mod p, d is
 * not): they give the right sum for any two points, equal ones, the
 * identity and points of small order included, so keys with a torsion
 * component need no special case. */
typedef struct {
    fe X, Y, Z, T;
} ge;

typedef struct {
    fe ypx, ymx, xy2d;
} ge_pre;

/* Fixed-base comb. A scalar below 2^253 is written in COMB_DIGITS signed
 * digits of COMB_W bits, s = sum e[i] 2^(W i) with |e[i]| <= 2^(W-1), and a
 * table row holds the 2^(W-1) multiples of one power of the point. Rows
 * serve two digit positions, odd positions first, then W doublings, then
 * the even ones: [s]P costs W doublings and one mixed addition per non-zero
 * digit. W = 5: 51 digits (~50 additions), 26 rows of 16 points, 50 KB.
 * In one run each of bench/sig_bench (1 KB bodies), against libsodium:
 * W = 4 (64 digits, 30 KB) 2.3x as fast, W = 5 2.6x, W = 6 (43 digits,
 * 84 KB, a table build 40 % slower) 2.7x. */
#define COMB_W 5
#define COMB_DIGITS ((253 + COMB_W - 1) / COMB_W)
#define COMB_ROWS ((COMB_DIGITS + 1) / 2)
#define COMB_COLS (1 << (COMB_W - 1))
typedef ge_pre comb_table[COMB_ROWS][COMB_COLS];

/* Constants, derived at start-up from their definitions (RFC 8032 5.1) by
 * init() below rather than written out as digits. */
static fe D2;     /* 2d, d = -121665/121666 */
static fe D;      /* d */
static fe SQRTM1; /* 2^((p-1)/4), a square root of -1 */
/* BASE[i][j] = (j + 1) 2^(2 W i) B for the base point B. */
static comb_table BASE;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void ge_identity(ge *p) {
    fe_set(p->X, 0);
    fe_set(p->Y, 1);
    fe_set(p->Z, 1);
    fe_set(p->T, 0);
}

/* The common second half of addition: given A = (Y1-X1)(y2-x2),
 * B = (Y1+X1)(y2+x2), C = T1 2d T2 and D = 2 Z1 Z2, the sum is
 * (EF : GH : FG : EH) with E = B-A, F = D-C, G = D+C, H = B+A; for a
 * difference C changes sign, so F and G trade places. a, b and c are
 * carried, d (a lazy doubling) is under 2^53. */
static void ge_finish(ge *r, const fe a, const fe b, const fe c, const fe d, int neg) {
    fe e, f, g, h;
    fe_sub_lazy(e, b, a);
    fe_sub_lazy(neg ? g : f, d, c);
    fe_add_lazy(neg ? f : g, d, c);
    fe_add_lazy(h, b, a);
    fe_mul(r->X, e, f);
    fe_mul(r->Y, g, h);
    fe_mul(r->Z, f, g);
    fe_mul(r->T, e, h);
}

/* r = p + q (9 multiplications; only used to build tables). */
static void ge_add(ge *r, const ge *p, const ge *q) {
    fe a, b, c, d, t;
    fe_sub(a, p->Y, p->X);
    fe_sub(t, q->Y, q->X);
    fe_mul(a, a, t);
    fe_add(b, p->Y, p->X);
    fe_add(t, q->Y, q->X);
    fe_mul(b, b, t);
    fe_mul(c, p->T, q->T);
    fe_mul(c, c, D2);
    fe_mul(d, p->Z, q->Z);
    fe_add_lazy(d, d, d);
    ge_finish(r, a, b, c, d, 0);
}

/* r = p + q, or p - q if neg (-q = (-x, y): y+x and y-x trade places and
 * 2dxy changes sign). 7 multiplications; r may be p. */
static void ge_madd(ge *r, const ge *p, const ge_pre *q, int neg) {
    fe a, b, c, d;
    fe_sub_lazy(a, p->Y, p->X);
    fe_mul(a, a, neg ? q->ypx : q->ymx);
    fe_add_lazy(b, p->Y, p->X);
    fe_mul(b, b, neg ? q->ymx : q->ypx);
    fe_mul(c, p->T, q->xy2d);
    fe_add_lazy(d, p->Z, p->Z);
    ge_finish(r, a, b, c, d, neg);
}

/* r = 2p: x' = 2xy / (y^2 - x^2), y' = (x^2 + y^2) / (2 - y^2 + x^2),
 * written as (EF : GH : FG : EH) with E = -2XY, G = X^2 - Y^2,
 * F = G + 2Z^2, H = X^2 + Y^2. r may be p. */
static void ge_dbl(ge *r, const ge *p) {
    fe a, b, c, e, f, g, h;
    fe_sq(a, p->X);
    fe_sq(b, p->Y);
    fe_sq(c, p->Z);
    fe_add(c, c, c);
    fe_add(h, a, b);
    fe_add(e, p->X, p->Y);
    fe_sq(e, e);
    fe_sub(e, h, e);
    fe_sub(g, a, b);
    fe_add(f, g, c);
    fe_mul(r->X, e, f);
    fe_mul(r->Y, g, h);
    fe_mul(r->Z, f, g);
    fe_mul(r->T, e, h);
}

/* Whether [8]p is the identity (X = 0, Y = Z): p has order 1, 2, 4 or 8. */
static int ge_small_order(const ge *p) {
    ge q;
    ge_dbl(&q, p);
    ge_dbl(&q, &q);
    ge_dbl(&q, &q);
    return fe_iszero(q.X) && fe_equal(q.Y, q.Z);
}

/* RFC 8032 5.1.3. Fails for a non-canonical y (y >= p), for a y with no x
 * on the curve, and for x = 0 with the sign bit set (the RFC's rule;
 * libsodium lets that one through, but only y = 1 or -1 have x = 0, and it
 * then refuses those points as of small order, as we do). */
static int ge_decode(ge *p, const unsigned char s[32]) {
    unsigned char back[32];
    fe_frombytes(p->Y, s);
    fe_tobytes(back, p->Y);
    back[31] |= s[31] & 0x80;
    if (memcmp(back, s, 32) != 0) return -1;

    /* x^2 = u/v with u = y^2 - 1, v = d y^2 + 1 (v is never 0: -1/d is not
     * a square). Candidate root x = u v^3 (u v^7)^((p-5)/8); if v x^2 is -u
     * rather than u, x sqrt(-1) is the root; if neither, there is none. */
    fe u, v, v3, x, vx2, t, one;
    fe_set(one, 1);
    fe_sq(u, p->Y);
    fe_mul(v, u, D);
    fe_sub(u, u, one);
    fe_add(v, v, one);
    fe_sq(v3, v);
    fe_mul(v3, v3, v);
    fe_sq(x, v3);
    fe_mul(x, x, v);
    fe_mul(x, x, u);
    fe_pow22523(x, x);
    fe_mul(x, x, v3);
    fe_mul(x, x, u);
    fe_sq(vx2, x);
    fe_mul(vx2, vx2, v);
    if (!fe_equal(vx2, u)) {
        fe_add(t, vx2, u);
        if (!fe_iszero(t)) return -1;
        fe_mul(x, x, SQRTM1);
    }
    int sign = s[31] >> 7;
    if (sign && fe_iszero(x)) return -1;
    if (fe_isodd(x) != sign) fe_neg(x, x);
    memcpy(p->X, x, sizeof x);
    fe_set(p->Z, 1);
    fe_mul(p->T, x, p->Y);
    return 0;
}

static void ge_encode(unsigned char s[32], const ge *p) {
    fe zi, x, y;
    fe_invert(zi, p->Z);
    fe_mul(x, p->X, zi);
    fe_mul(y, p->Y, zi);
    fe_tobytes(s, y);
    s[31] |= (unsigned char)(fe_isodd(x) << 7);
}

/* Affine forms of a table row's points with one inversion (Montgomery's
 * trick: invert the product of the Z's, then peel one factor off at a
 * time). */
static void row_to_pre(ge_pre out[COMB_COLS], const ge m[COMB_COLS]) {
    fe acc[COMB_COLS], inv, zi, x, y;
    memcpy(acc[0], m[0].Z, sizeof(fe));
    for (int j = 1; j < COMB_COLS; j++) fe_mul(acc[j], acc[j - 1], m[j].Z);
    fe_invert(inv, acc[COMB_COLS - 1]); /* 1/(Z0...Zn) */
    for (int j = COMB_COLS - 1; j >= 0; j--) {
        if (j > 0) {
            fe_mul(zi, inv, acc[j - 1]); /* 1/Zj */
            fe_mul(inv, inv, m[j].Z);    /* 1/(Z0...Zj-1) */
        } else {
            memcpy(zi, inv, sizeof zi);
        }
        fe_mul(x, m[j].X, zi);
        fe_mul(y, m[j].Y, zi);
        fe_add(out[j].ypx, y, x);
        fe_sub(out[j].ymx, y, x);
        fe_mul(out[j].xy2d, x, y);
        fe_mul(out[j].xy2d, out[j].xy2d, D2);
    }
}

/* t[i][j] = (j + 1) 2^(2 W i) p. */
static void table_build(comb_table t, const ge *p) {
    ge base = *p, m[COMB_COLS];
    for (int i = 0; i < COMB_ROWS; i++) {
        m[0] = base;
        for (int j = 1; j < COMB_COLS; j++) ge_add(&m[j], &m[j - 1], &base);
        row_to_pre(t[i], m);
        /* m[last] = 2^(W-1) base; W + 1 doublings make 2^(2W) base */
        base = m[COMB_COLS - 1];
        for (int k = 0; k <= COMB_W; k++) ge_dbl(&base, &base);
    }
}

/* ---- scalars ---- */

/* L = 2^252 + 27742317777372353535851937790883648493, the order of B,
 * little-endian. */
static const unsigned char L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                    0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                    [31] = 0x10};

static int scalar_below_l(const unsigned char s[32]) {
    for (int i = 31; i >= 0; i--)
        if (s[i] != L[i]) return s[i] < L[i];
    return 0;
}

/* a = sum e[i] 2^(W i) with e[i] in [-2^(W-1), 2^(W-1)): each W-bit
 * window plus the carry from below, less 2^W (carrying one up) when it is
 * 2^(W-1) or more. For a < 2^253 the last window is small enough to carry
 * nothing out; both scalars used here are below L < 2^253. */
static void recode(signed char e[COMB_DIGITS], const unsigned char a[32]) {
    int carry = 0;
    for (int i = 0; i < COMB_DIGITS; i++) {
        int pos = COMB_W * i, byte = pos / 8;
        unsigned w = a[byte] | (byte + 1 < 32 ? (unsigned)a[byte + 1] << 8 : 0);
        int v = (int)((w >> (pos % 8)) & ((1u << COMB_W) - 1)) + carry;
        carry = (v + (1 << (COMB_W - 1))) >> COMB_W;
        e[i] = (signed char)(v - (carry << COMB_W));
    }
}

static void add_digit(ge *p, const ge_pre row[COMB_COLS], int d) {
    if (d > 0) ge_madd(p, p, &row[d - 1], 0);
    else if (d < 0) ge_madd(p, p, &row[-d - 1], 1);
}

/* r = [s]B + [h]Q from Q's table tq. Both scalars share one accumulator:
 * their odd-position digits first, W doublings, then the even ones. */
static void comb2(ge *r, const signed char s[COMB_DIGITS], const signed char h[COMB_DIGITS],
                  const comb_table tq) {
    ge_identity(r);
    for (int i = 1; i < COMB_DIGITS; i += 2) {
        add_digit(r, BASE[i / 2], s[i]);
        add_digit(r, tq[i / 2], h[i]);
    }
    for (int k = 0; k < COMB_W; k++) ge_dbl(r, r);
    for (int i = 0; i < COMB_DIGITS; i += 2) {
        add_digit(r, BASE[i / 2], s[i]);
        add_digit(r, tq[i / 2], h[i]);
    }
}

/* ---- keys and verification ---- */

struct ed25519_key {
    unsigned char pk[32];  /* A as given: h hashes these bytes */
    comb_table neg_a;      /* (j + 1) 2^(2 W i) (-A) */
};

static void init(void) {
    fe t, y;
    /* p = 5 (mod 8) makes 2 a non-square, so 2^((p-1)/4) squares to
     * 2^((p-1)/2) = -1; (p-1)/4 = 2 (2^252 - 3) + 1. */
    fe_set(t, 2);
    fe_pow22523(SQRTM1, t);
    fe_sq(SQRTM1, SQRTM1);
    fe_mul(SQRTM1, SQRTM1, t);
    fe_set(t, 121666);
    fe_invert(t, t);
    fe_set(D, 121665);
    fe_mul(D, D, t);
    fe_neg(D, D);
    fe_add(D2, D, D);
    /* B is the point with y = 4/5 and an even ("positive") x. */
    unsigned char enc[32];
    fe_set(t, 5);
    fe_invert(t, t);
    fe_set(y, 4);
    fe_mul(y, y, t);
    fe_tobytes(enc, y);
    ge b;
    if (ge_decode(&b, enc) != 0) ge_identity(&b); /* cannot happen; the RFC tests would fail */
    table_build(BASE, &b);
}

int ed25519_key_new(const unsigned char pk[32], ed25519_key **out) {
    if (out) *out = NULL;
    if (!pk || !out) return ED25519_INVALID;
    /* Every key is made here, after init: holding a key implies the base
     * table is ready, so ed25519_verify needs no pthread_once of its own. */
    pthread_once(&once, init);
    /* verification hashes with libsodium, which wants this first (the
     * server calls it at start; tools and tests may not) */
    if (sodium_init() < 0) return ED25519_NOMEM;
    ge a;
    if (ge_decode(&a, pk) != 0 || ge_small_order(&a)) return ED25519_INVALID;
    ed25519_key *k = eh_malloc(sizeof *k);
    if (!k) return ED25519_NOMEM;
    memcpy(k->pk, pk, 32);
    fe_neg(a.X, a.X); /* -A = (-x, y) */
    fe_neg(a.T, a.T);
    table_build(k->neg_a, &a);
    *out = k;
    return ED25519_OK;
}

void ed25519_key_free(ed25519_key *k) { eh_free(k); }

int ed25519_verify(const ed25519_key *k, const unsigned char sig[64], const void *msg, size_t len) {
    if (!k || !sig || (!msg && len)) return ED25519_INVALID;
    const unsigned char *s = sig + 32;
    if (!scalar_below_l(s)) return ED25519_INVALID;

    unsigned char digest[64], h[32];
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, sig, 32);
    crypto_hash_sha512_update(&st, k->pk, 32);
    if (len) crypto_hash_sha512_update(&st, msg, len);
    crypto_hash_sha512_final(&st, digest);
    crypto_core_ed25519_scalar_reduce(h, digest);

    signed char se[COMB_DIGITS], he[COMB_DIGITS];
    recode(se, s);
    recode(he, h);
    ge r;
    comb2(&r, se, he, k->neg_a);
    unsigned char enc[32];
    ge_encode(enc, &r);
    if (memcmp(enc, sig, 32) != 0) return ED25519_INVALID;
    /* libsodium refuses an R that encodes a point of small order (checking
     * its bytes against a list, first). R is the canonical encoding of r
     * here, so testing r is the same test: the list holds the canonical
     * encodings of those points (either sign bit) plus two non-canonical
     * ones, which never match a computed encoding. */
    return ge_small_order(&r) ? ED25519_INVALID : ED25519_OK;
}
