/*
 * gs_gen: a deterministic synthetic district. See gs_gen.h.
 *
 * Where it sits: feeds gridsim, the benchmarks, the demo and tests with
 * records that look like a real district's and pass gs_record_check().
 *
 * How it stays deterministic with random access: gs_gen_new() lays out the
 * hierarchy once (streets, communities, grids, how many households and
 * rental buildings each grid holds, how many units each building has) in
 * small tables. A record is then built from a PRNG seeded by (seed, kind,
 * index) alone, so household i is the same bytes whatever else was generated
 * before, in whichever thread.
 *
 * How ID numbers stay unique without a table: every person has a global
 * slot number (household i member j, rental unit i tenant j, building b's
 * landlord). With T year classes (N = T * 182135 >= slots; T = 7 for the
 * default district), the slot is first scrambled by a keyed pseudo-random
 * bijection of 0..N-1 (a Feistel network with cycle walking) so that
 * neighbours in a household get unrelated birthdays and years. The result
 * x splits into a class x mod T and a
 * position q = x / T in 0..182134 (= 499 * 365). The class fixes the birth
 * year modulo T: the wanted birth year is moved down by fewer than T years
 * to the nearest year of that residue. The position fixes the 3-digit
 * sequence (q mod 499; 499 values per sex) and the day of the year
 * (q / 499). Two persons of one class differ in sequence or birthday; two of
 * different classes differ in birth year. So no two persons share an ID
 * number.
 */
#include "gs_gen.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gs_grid.h"
#include "gs_validate.h"

/* ---- Constants ---------------------------------------------------------- */

#define S_DAY_MS 86400000LL
#define S_CST_MS (8LL * 3600 * 1000)

#define S_SEQ_VALUES 499u                         /* 3-digit sequences per sex */
#define S_ID_CLASS (S_SEQ_VALUES * 365u)          /* slots per year class */
#define S_SLOTS_MAX (1ull << 40) /* person slots a district may need */

#define S_HH_SLOTS 6u       /* person slots per household (max members) */
#define S_UNIT_SLOTS 4u     /* person slots per rental unit (max leases) */

#define S_BUF_MAX 240       /* bytes in one built string; max_text is 256 */

/* PRNG stream kinds: one seed per (kind, index) keeps records independent. */
enum {
    S_KIND_STREET = 1,
    S_KIND_COMMUNITY,
    S_KIND_GRID,
    S_KIND_HOUSEHOLD,
    S_KIND_BUILDING,
    S_KIND_BUILDING_UNITS,
    S_KIND_RENTAL,
    S_KIND_INSPECTOR,
    S_KIND_ORG,
    S_KIND_ORG_CLASS,
};

/* Kinds of identity document a person is generated with. */
enum { S_DOC_RESIDENT, S_DOC_PASSPORT, S_DOC_HKMO, S_DOC_NONE };

/* ---- Name and code tables ------------------------------------------------
 * CJK tables are UTF-8 strings of 3-byte characters, indexed by character. */

#define S_CJK_COUNT(s) ((sizeof(s) - 1) / 3)

/* Characters for two-character place names (communities, roads, villages). */
static const char s_place_chars[] =
    "东西南北新华阳光明海湾沙河桃源园丽山水湖松坪龙凤安康福田城乐兴盛和平"
    "港荔林花翠青云星月白石桂茂泉";
_Static_assert((sizeof(s_place_chars) - 1) % 3 == 0, "3-byte characters");

/* Common surnames, most frequent first (s_pick_surname favours the front). */
static const char s_surnames[] =
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁"
    "潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦"
    "邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
_Static_assert((sizeof(s_surnames) - 1) % 3 == 0, "3-byte characters");

static const char s_given_male[] =
    "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳建国志文峰成东"
    "亮晨博轩睿梓然霖泽锦豪天";
_Static_assert((sizeof(s_given_male) - 1) % 3 == 0, "3-byte characters");

static const char s_given_female[] =
    "芳娜敏静丽艳娟霞秀玲桂英红燕萍雪琳婷洁佳欣怡悦涵萱雨馨月瑶颖慧倩梅兰晶蕾楠"
    "薇诗思梦琪彤妍";
_Static_assert((sizeof(s_given_female) - 1) % 3 == 0, "3-byte characters");

/* Street names used for the first eight 街道 (those of Shenzhen Nanshan). */
static const char *const s_default_streets[] = {
    "南头", "南山", "沙河", "蛇口", "招商", "粤海", "桃源", "西丽",
};

/* Counties that send many migrants to the Pearl River Delta (GB/T 2260). */
static const char *const s_migrant_areas[] = {
    "430524", "431021", "431121", "430124", "421023", "420117", "360121",
    "362421", "450821", "450881", "511622", "510921", "500228", "500233",
    "412721", "411421", "441581", "445221", "440514", "441426", "520321",
    "350583", "341221", "130229", "230103", "610125", "110105", "310115",
};
#define S_MIGRANT_AREAS (sizeof(s_migrant_areas) / sizeof(s_migrant_areas[0]))

/* Name of a city (by the first four digits of a district code) for
 * organisation names and hukou addresses; the landline area code. */
static const struct {
    const char *prefix;     /* first four digits of the district code */
    const char *city;       /* city name as it starts a company name */
    const char *region;     /* province + city, for addresses */
    const char *area_code;  /* landline area code */
} s_cities[] = {
    {"4403", "深圳市", "广东省深圳市", "0755"},
    {"4401", "广州市", "广东省广州市", "020"},
    {"1101", "北京市", "北京市", "010"},
    {"3101", "上海市", "上海市", "021"},
    {"5001", "重庆市", "重庆市", "023"},
    {"3301", "杭州市", "浙江省杭州市", "0571"},
};

/* District names for hukou addresses, by GB/T 2260 code. */
static const struct {
    const char *code;           /* 6-digit district code */
    const char *name;           /* its name */
} s_district_names[] = {
    {"440303", "罗湖区"}, {"440304", "福田区"}, {"440305", "南山区"},
    {"440306", "宝安区"}, {"440307", "龙岗区"}, {"440308", "盐田区"},
    {"440106", "天河区"}, {"110105", "朝阳区"}, {"310115", "浦东新区"},
};

static const char *const s_ethnic_minor[] = {
    "壮族", "回族", "满族", "苗族", "土家族", "瑶族", "侗族", "彝族",
    "畲族", "布依族", "朝鲜族", "蒙古族",
};

static const char *const s_occupations[] = {
    "职员", "工人", "个体经营", "教师", "医生", "护士", "司机", "快递员",
    "软件工程师", "销售", "厨师", "保安", "家政服务", "公务员", "自由职业",
    "无业",
};

static const char *const s_company_kinds[] = {
    "科技有限公司", "实业有限公司", "电子有限公司", "贸易有限公司",
    "物流有限公司", "餐饮管理有限公司",
};

static const char *const s_inflow_reasons[] = {
    "务工", "经商", "随迁家属", "投靠亲友", "就学", "其他",
};
static const int s_inflow_weights[] = {60, 15, 10, 8, 3, 4};

/* Foreign nationalities: ISO 3166-1 alpha-3, passport letter, names. */
typedef struct s_nation {
    const char *code;           /* ISO 3166-1 alpha-3 */
    char passport;              /* leading letter of its passport numbers */
    const char *family[4];      /* family names */
    const char *male[3];        /* given names */
    const char *female[3];      /* given names */
} s_nation_t;

static const s_nation_t s_nations[] = {
    {"KOR", 'M', {"KIM", "LEE", "PARK", "CHOI"},
     {"MINJUN", "JIHOON", "DONGHYUN"}, {"SEOYEON", "HAEUN", "JIWOO"}},
    {"JPN", 'T', {"SATO", "SUZUKI", "TANAKA", "WATANABE"},
     {"HARUTO", "SOTA", "REN"}, {"YUI", "AOI", "HINA"}},
    {"USA", 'A', {"SMITH", "JOHNSON", "BROWN", "MILLER"},
     {"JAMES", "DANIEL", "MICHAEL"}, {"EMMA", "SOPHIA", "GRACE"}},
    {"GBR", 'G', {"TAYLOR", "WILSON", "EVANS", "THOMAS"},
     {"OLIVER", "GEORGE", "HARRY"}, {"AMELIA", "ISLA", "EMILY"}},
    {"SGP", 'K', {"TAN", "LIM", "NG", "ONG"},
     {"WEI MING", "JUN JIE", "KAI WEN"}, {"HUI LING", "XIN YI", "MEI LIN"}},
    {"MYS", 'B', {"WONG", "CHAN", "LEE", "TEH"},
     {"AHMAD", "CHEE KEONG", "RAJ"}, {"SITI", "PEI SHAN", "PRIYA"}},
    {"DEU", 'C', {"MUELLER", "SCHMIDT", "FISCHER", "WEBER"},
     {"LUKAS", "FELIX", "JONAS"}, {"ANNA", "LEA", "MARIE"}},
    {"FRA", 'F', {"MARTIN", "BERNARD", "DUBOIS", "PETIT"},
     {"LOUIS", "HUGO", "JULES"}, {"CAMILLE", "CHLOE", "ZOE"}},
    {"IND", 'Z', {"SHARMA", "PATEL", "SINGH", "KUMAR"},
     {"ARJUN", "RAHUL", "VIKRAM"}, {"ANANYA", "PRIYA", "DIYA"}},
};
#define S_NATIONS (sizeof(s_nations) / sizeof(s_nations[0]))

static const char *const s_visa_adult[] = {"Z", "M", "Q1", "S1", "X1"};
static const int s_visa_adult_weights[] = {50, 10, 15, 10, 15};

static const char *const s_religions[] = {
    "佛教", "基督教", "天主教", "伊斯兰教", "道教",
};
static const char *const s_health[] = {
    "高血压", "糖尿病", "慢性肾病", "精神障碍（稳定期）", "孕产妇",
};
static const char *const s_disability[] = {
    "肢体残疾三级", "视力残疾二级", "听力残疾四级", "智力残疾二级",
};
static const char *const s_welfare[] = {
    "低保", "特困供养", "优抚对象", "残疾人两项补贴",
};

static const char *const s_hazards[] = {
    "电动车室内充电", "私拉乱接电线", "消防通道堵塞", "灭火器过期",
    "未安装烟感报警器", "燃气管道老化", "防盗网未留逃生口", "疏散指示标志损坏",
};

/* Household compositions by size: H head, S spouse, C child, P parent,
 * G grandchild (child of the first C), O the first C's spouse, B sibling,
 * N non-relative. */
typedef struct s_shape {
    const char *roles;  /* one letter per member, head first */
    int weight;         /* relative frequency among shapes of this size */
} s_shape_t;

static const s_shape_t s_shapes[][6] = {
    {{"H", 1}},
    {{"HS", 60}, {"HC", 18}, {"HP", 12}, {"HB", 5}, {"HN", 5}},
    {{"HSC", 70}, {"HSP", 12}, {"HCC", 8}, {"HSB", 5}, {"HSN", 5}},
    {{"HSCC", 55}, {"HSCP", 25}, {"HSCG", 10}, {"HSPP", 10}},
    {{"HSCCP", 40}, {"HSCCC", 20}, {"HSCPP", 25}, {"HSCOG", 15}},
    {{"HSCCPP", 50}, {"HSCOGG", 30}, {"HSCCCP", 20}},
};

/* Household sizes 1..6 by household class. */
static const int s_size_registered[6] = {15, 25, 27, 18, 10, 5};
static const int s_size_floating[6] = {30, 27, 22, 13, 6, 2};
static const int s_size_foreign[6] = {40, 30, 20, 10, 0, 0};

/* ---- The generator ------------------------------------------------------ */

typedef struct s_street {
    char name[32];              /* e.g. 南头街道 */
} s_street_t;

typedef struct s_community {
    char name[32];              /* e.g. 桃源社区 */
    char place[8];              /* its two-character place name */
    uint32_t street;            /* index into streets */
    bool village;               /* holds an urban village (城中村) */
} s_community_t;

typedef struct s_grid {
    char code[16];              /* 15-digit grid code */
    char name[48];              /* e.g. 桃源社区第3网格 */
    char road[24];              /* a road name no other grid uses */
    char device[24];            /* "dev-<code>" */
    char collector[24];         /* "col-<code>" */
    uint32_t community;         /* index into communities */
    uint32_t number;            /* grid number inside its community, 1.. */
    bool village;               /* urban-village grid: many rental buildings */
    uint8_t units;              /* residential buildings: 单元 per building */
    uint8_t floors;             /* residential buildings: floors */
    uint8_t rooms;              /* residential buildings: rooms per floor */
} s_grid_t;

struct gs_gen {
    gs_gen_opts_t opts;         /* options as given (district copied below) */
    char district[7];           /* 6-digit district code */
    const char *city;           /* city name for company names, or "" */
    char region[64];            /* province, city, district for addresses */
    const char *area_code;      /* landline area code */
    uint32_t n_streets;         /* streets in the district */
    uint32_t n_communities;     /* communities in the district */
    uint32_t n_grids;           /* grids in the district */
    uint32_t n_households;      /* households in the district */
    uint32_t n_buildings;       /* rental buildings in the district */
    uint32_t n_units;           /* rental units in the district */
    s_street_t *streets;        /* n_streets */
    s_community_t *communities; /* n_communities */
    s_grid_t *grids;            /* n_grids */
    uint32_t *hh_first;         /* n_grids + 1: first household of each grid */
    uint32_t *bld_first;        /* n_grids + 1: first building of each grid */
    uint32_t *unit_first;       /* n_buildings + 1: first unit of each building */
    uint32_t n_orgs;            /* organisations in the district */
    uint32_t *org_first;        /* n_grids + 1: first organisation of each grid */
    uint64_t slot_tenants;      /* first person slot of rental tenants */
    uint64_t slot_landlords;    /* first person slot of building landlords */
    uint32_t year_classes;      /* T: birth years are spread over T classes */
    uint64_t perm_n;            /* T * S_ID_CLASS: slots are permuted in 0..n-1 */
    unsigned perm_half;         /* bits in each Feistel half (2^(2h) >= n) */
    uint64_t perm_key[4];       /* Feistel round keys, from the seed */
    int64_t today;              /* days since 1970-01-01 at now_ms, CST */
    int this_year;              /* calendar year of today */
};

/* ---- PRNG: splitmix64 ---------------------------------------------------- */

typedef struct s_rng {
    uint64_t state;             /* advanced by the golden-ratio increment */
} s_rng_t;

static uint64_t
s_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
s_rng_seed(s_rng_t *r, uint64_t seed, uint32_t kind, uint64_t index)
{
    r->state = s_mix(seed + 0x9e3779b97f4a7c15ULL)
               ^ s_mix(((uint64_t) kind << 56) ^ s_mix(index + kind));
}

static uint64_t
s_rng_next(s_rng_t *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return s_mix(r->state);
}

/* Uniform in [0, n); n == 0 gives 0. */
static uint32_t
s_rng_below(s_rng_t *r, uint32_t n)
{
    return (uint32_t) (((s_rng_next(r) >> 32) * (uint64_t) n) >> 32);
}

/* Uniform in [lo, hi]; lo when the range is empty. */
static int
s_rng_range(s_rng_t *r, int lo, int hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int) s_rng_below(r, (uint32_t) (hi - lo + 1));
}

/* True with probability permille / 1000. */
static bool
s_rng_chance(s_rng_t *r, uint32_t permille)
{
    return s_rng_below(r, 1000) < permille;
}

/* An index drawn in proportion to weights[0..n). */
static size_t
s_rng_pick(s_rng_t *r, const int *weights, size_t n)
{
    int total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    int x = (int) s_rng_below(r, (uint32_t) total);
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i])
            return i;
        x -= weights[i];
    }
    return n - 1;
}

/* Uniform in (0, 1]. */
static double
s_rng_unit(s_rng_t *r)
{
    return (double) ((s_rng_next(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

/* ---- Calendar ----------------------------------------------------------- */

static const int s_month_start[13] = {0,   31,  59,  90,  120, 151, 181,
                                      212, 243, 273, 304, 334, 365};

/* Month and day of day-of-year doy (0..364) in a common year: birth days
 * never fall on 29 February, which keeps every (year, doy) a real date. */
static void
s_doy_month_day(uint32_t doy, int *m, int *d)
{
    int mo = 1;
    while (mo < 12 && (int) doy >= s_month_start[mo])
        mo++;
    *m = mo;
    *d = (int) doy - s_month_start[mo - 1] + 1;
}

/* ---- Building strings in the arena ---------------------------------------- */

/* Per-record build state. */
typedef struct s_ctx {
    const gs_gen_t *gen;        /* the district */
    gs_arena_t *arena;          /* where the record goes */
    s_rng_t rng;                /* current stream */
    bool failed;                /* an allocation failed: the result is NULL */
} s_ctx_t;

/* After a failed allocation builders keep writing here, so they need no
 * error paths; the public functions return NULL at the end. Big enough for
 * the largest single allocation (a message struct or a string); one per
 * thread, since its contents are never read. */
static _Thread_local max_align_t s_scratch[(S_BUF_MAX + 16) / sizeof(max_align_t) + 1];

static void *
s_alloc(s_ctx_t *c, size_t n)
{
    void *p = gs_arena_alloc(c->arena, n);
    if (!p) {
        assert(n <= sizeof(s_scratch));
        c->failed = true;
        p = s_scratch;
    }
    return p;
}

/* A bounded string under construction (on the stack). */
typedef struct s_buf {
    size_t n;                   /* bytes used, excluding the NUL */
    char s[S_BUF_MAX];          /* the text, NUL-terminated */
} s_buf_t;

static void
s_buf_addn(s_buf_t *b, const char *s, size_t n)
{
    if (b->n + n >= sizeof(b->s))
        n = 0; /* our strings are far below the limit; never split UTF-8 */
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void
s_buf_add(s_buf_t *b, const char *s)
{
    s_buf_addn(b, s, strlen(s));
}

static void
s_buf_char(s_buf_t *b, char ch)
{
    s_buf_addn(b, &ch, 1);
}

/* Decimal v, zero-padded to at least width digits. */
static void
s_buf_num(s_buf_t *b, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    char out[24];
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    s_buf_addn(b, out, (size_t) n);
}

/* Character k of a 3-byte CJK table. */
static void
s_buf_cjk(s_buf_t *b, const char *table, size_t k)
{
    s_buf_addn(b, table + 3 * k, 3);
}

static char *
s_buf_dup(s_ctx_t *c, const s_buf_t *b)
{
    char *p = s_alloc(c, b->n + 1);
    memcpy(p, b->s, b->n + 1);
    return p;
}

static char *
s_dup(s_ctx_t *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = s_alloc(c, n);
    memcpy(p, s, n);
    return p;
}

/* "YYYY-MM-DD" of a day number. */
static char *
s_date_dup(s_ctx_t *c, int64_t days)
{
    int y, m, d;
    gs_civil_from_days(days, &y, &m, &d);
    s_buf_t b = {0};
    s_buf_num(&b, (uint64_t) y, 4);
    s_buf_char(&b, '-');
    s_buf_num(&b, (uint64_t) m, 2);
    s_buf_char(&b, '-');
    s_buf_num(&b, (uint64_t) d, 2);
    return s_buf_dup(c, &b);
}

/* A two-character place name for index n; injective for n < 47 * 48. */
static void
s_buf_place(s_buf_t *b, uint32_t n)
{
    const uint32_t k = (uint32_t) S_CJK_COUNT(s_place_chars);
    uint32_t a = n % k;
    s_buf_cjk(b, s_place_chars, a);
    s_buf_cjk(b, s_place_chars, (n / k + a + 1) % k);
}

static void
s_copy_buf(char *dst, size_t cap, const s_buf_t *b)
{
    size_t n = b->n < cap - 1 ? b->n : cap - 1;
    memcpy(dst, b->s, n);
    dst[n] = '\0';
}

/* ---- Small pickers ------------------------------------------------------- */

#define S_PICK(r, arr) ((arr)[s_rng_below((r), sizeof(arr) / sizeof((arr)[0]))])

/* A surname index, skewed towards the common ones. */
static size_t
s_pick_surname(s_rng_t *r)
{
    const uint32_t k = (uint32_t) S_CJK_COUNT(s_surnames);
    uint32_t u = s_rng_below(r, 1u << 16);
    return (size_t) (((uint64_t) u * u * k) >> 32);
}

/* A Chinese full name: surname then one or two given characters. */
static void
s_buf_name(s_buf_t *b, s_rng_t *r, int surname, int sex, int birth_year)
{
    s_buf_cjk(b, s_surnames, surname >= 0 ? (size_t) surname
                                          : s_pick_surname(r));
    const char *given = sex == 1 ? s_given_male : s_given_female;
    size_t k = sex == 1 ? S_CJK_COUNT(s_given_male)
                        : S_CJK_COUNT(s_given_female);
    int two = birth_year >= 1980 ? 700 : 450;
    s_buf_cjk(b, given, s_rng_below(r, (uint32_t) k));
    if (s_rng_chance(r, (uint32_t) two))
        s_buf_cjk(b, given, s_rng_below(r, (uint32_t) k));
}

/* An 11-digit mainland mobile number. */
static char *
s_mobile(s_ctx_t *c)
{
    static const char second[] = "3333355555888887796";
    s_buf_t b = {0};
    s_buf_char(&b, '1');
    s_buf_char(&b, second[s_rng_below(&c->rng, sizeof(second) - 1)]);
    s_buf_num(&b, s_rng_below(&c->rng, 1000000000u), 9);
    return s_buf_dup(c, &b);
}

/* A landline in the district's city, area code included. */
static char *
s_landline(s_ctx_t *c)
{
    s_buf_t b = {0};
    s_buf_add(&b, c->gen->area_code);
    s_buf_char(&b, s_rng_chance(&c->rng, 500) ? '2' : '8');
    s_buf_num(&b, s_rng_below(&c->rng, 10000000u), 7);
    return s_buf_dup(c, &b);
}

static char **
s_phones(s_ctx_t *c, size_t n)
{
    return s_alloc(c, n * sizeof(char *));
}

/* ---- Identity numbers ----------------------------------------------------- */

void
gs_gen_idnum(const char *area6, int yyyymmdd, int sex, uint32_t seq,
             char out[19])
{
    assert(area6 && strlen(area6) == 6);
    uint32_t s3 = 2 * (seq % S_SEQ_VALUES) + (sex == 1 ? 1u : 2u);
    memcpy(out, area6, 6);
    uint32_t v = (uint32_t) yyyymmdd;
    for (int i = 13; i >= 6; i--) {
        out[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    out[14] = (char) ('0' + s3 / 100);
    out[15] = (char) ('0' + s3 / 10 % 10);
    out[16] = (char) ('0' + s3 % 10);
    out[17] = '\0';
    out[17] = gs_idnum_check_char(out);
    out[18] = '\0';
}

/* Where a person slot puts its ID number (see the file comment). */
typedef struct s_slot_parts {
    int year_class;             /* birth year modulo the class count */
    uint32_t seq;               /* 0..498: the 3-digit sequence, by sex */
    uint32_t doy;               /* 0..364: day of the birth year */
} s_slot_parts_t;

/* A pseudo-random bijection of 0..perm_n-1: a balanced Feistel network on
 * 2 * perm_half bits, applied again while the result lies outside the range
 * (cycle walking: a few passes on average, since 2^(2h) < 4n). */
static uint64_t
s_permute(const gs_gen_t *g, uint64_t x)
{
    const unsigned h = g->perm_half;
    const uint64_t mask = (1ull << h) - 1;
    do {
        uint64_t left = x >> h, right = x & mask;
        for (int round = 0; round < 4; round++) {
            uint64_t f = s_mix(right ^ g->perm_key[round]) & mask;
            uint64_t next = left ^ f;
            left = right;
            right = next;
        }
        x = (left << h) | right;
    } while (x >= g->perm_n);
    return x;
}

static s_slot_parts_t
s_slot_parts(const gs_gen_t *g, uint64_t slot)
{
    assert(slot < g->perm_n);
    uint64_t x = s_permute(g, slot);
    uint64_t q = x / g->year_classes;
    return (s_slot_parts_t){
        .year_class = (int) (x % g->year_classes),
        .seq = (uint32_t) (q % S_SEQ_VALUES),
        .doy = (uint32_t) (q / S_SEQ_VALUES),
    };
}

/* The largest year <= wanted whose residue modulo the class count is the
 * slot's class: at most year_classes - 1 years before the wanted one. */
static int
s_birth_year(const gs_gen_t *g, int year_class, int wanted)
{
    int n = (int) g->year_classes;
    int off = ((wanted - year_class) % n + n) % n;
    return wanted - off;
}

/* ---- Persons --------------------------------------------------------------- */

/* What to make of one person; s_person fills in the rest from the rng. */
typedef struct s_person_plan {
    uint64_t slot;              /* global person slot (unique ID number) */
    int year;                   /* in: wanted birth year; out: actual year */
    int sex;                    /* 1 male, 2 female */
    int pop;                    /* Gridsync__V1__PopulationType */
    int relation;               /* Gridsync__V1__Relation, 0 outside households */
    int doc;                    /* S_DOC_* */
    int surname;                /* index into s_surnames, -1 to draw one */
    const char *area;           /* 6-digit area code of the ID number */
    const s_nation_t *nation;   /* passport holders' country */
    const char *hukou_address;  /* registered persons' 户籍地址, or NULL */
    bool landline;              /* add the household's landline */
} s_person_plan_t;

/* Area code of a registered resident's ID number: mostly the district,
 * some from the rest of the city, a few who moved their hukou here. */
static const char *
s_registered_area(s_ctx_t *c, char buf[7], uint32_t local_permille)
{
    uint32_t x = s_rng_below(&c->rng, 1000);
    if (x < local_permille)
        return c->gen->district;
    if (x < local_permille + (1000 - local_permille) * 2 / 3) {
        /* another district of the same city */
        memcpy(buf, c->gen->district, 4);
        int d = 2 + (int) s_rng_below(&c->rng, 6);
        if (d == (c->gen->district[4] - '0') * 10 + (c->gen->district[5] - '0'))
            d = d == 2 ? 3 : 2;
        buf[4] = (char) ('0' + d / 10);
        buf[5] = (char) ('0' + d % 10);
        buf[6] = '\0';
        return buf;
    }
    return S_PICK(&c->rng, s_migrant_areas);
}

static const char *
s_ethnicity(s_ctx_t *c, const char *area)
{
    /* Guangxi sends many Zhuang; elsewhere minorities are about 7% */
    if (area[0] == '4' && area[1] == '5' && s_rng_chance(&c->rng, 300))
        return "壮族";
    if (s_rng_chance(&c->rng, 70))
        return S_PICK(&c->rng, s_ethnic_minor);
    return "汉族";
}

/* "<words>科技有限公司" style employer name. */
static char *
s_company(s_ctx_t *c)
{
    s_buf_t b = {0};
    s_buf_add(&b, c->gen->city);
    s_buf_place(&b, s_rng_below(&c->rng, 2000));
    s_buf_add(&b, S_PICK(&c->rng, s_company_kinds));
    return s_buf_dup(c, &b);
}

static Gridsync__V1__FloatingInfo *
s_floating_info(s_ctx_t *c, int age, int64_t birth_days, uint64_t slot)
{
    const gs_gen_t *g = c->gen;
    Gridsync__V1__FloatingInfo *f = s_alloc(c, sizeof(*f));
    gridsync__v1__floating_info__init(f);
    if (age < 16)
        f->inflow_reason = (char *) (age >= 6 && s_rng_chance(&c->rng, 300)
                                         ? "就学" : "随迁家属");
    else
        f->inflow_reason = (char *) s_inflow_reasons[s_rng_pick(
            &c->rng, s_inflow_weights, sizeof(s_inflow_weights) / sizeof(int))];
    if (age > 25 && strcmp(f->inflow_reason, "就学") == 0)
        f->inflow_reason = (char *) "务工";
    /* arrived after birth, within the last 20 years */
    int64_t span = g->today - birth_days - 1;
    if (span > 20 * 365)
        span = 20 * 365;
    int64_t inflow = g->today - s_rng_range(&c->rng, span < 7 ? (int) span : 7,
                                            (int) span);
    f->inflow_date = s_date_dup(c, inflow);
    if (age >= 16 && s_rng_chance(&c->rng, 650)) {
        s_buf_t b = {0};
        s_buf_add(&b, "JZZ");
        s_buf_add(&b, g->district);
        s_buf_num(&b, (slot * 7919u + 13u) % 100000000u, 8);
        f->permit_number = s_buf_dup(c, &b);
        int64_t issued = inflow > g->today - 400 ? inflow
                                                 : g->today - s_rng_range(&c->rng, 0, 400);
        f->permit_expiry = s_date_dup(c, issued + 365 * s_rng_range(&c->rng, 1, 3));
    }
    return f;
}

static Gridsync__V1__ForeignerInfo *
s_foreigner_info(s_ctx_t *c, const s_nation_t *n, int age)
{
    const gs_gen_t *g = c->gen;
    Gridsync__V1__ForeignerInfo *f = s_alloc(c, sizeof(*f));
    gridsync__v1__foreigner_info__init(f);
    f->nationality = (char *) n->code;
    if (age < 18)
        f->visa_type = (char *) (s_rng_chance(&c->rng, 500) ? "S1" : "Q1");
    else
        f->visa_type = (char *) s_visa_adult[s_rng_pick(
            &c->rng, s_visa_adult_weights,
            sizeof(s_visa_adult_weights) / sizeof(int))];
    int64_t expiry = g->today + s_rng_range(&c->rng, 30, 700);
    f->visa_expiry = s_date_dup(c, expiry);
    if (s_rng_chance(&c->rng, 400))
        f->planned_departure = s_date_dup(c, expiry - s_rng_range(&c->rng, 0, 29));
    return f;
}

static Gridsync__V1__Restricted *
s_restricted(s_ctx_t *c, int age, const char *ethnicity)
{
    Gridsync__V1__Restricted *r = s_alloc(c, sizeof(*r));
    gridsync__v1__restricted__init(r);
    bool any = false;
    if (s_rng_chance(&c->rng, 300)) {
        r->religion = (char *) (strcmp(ethnicity, "回族") == 0
                                    ? "伊斯兰教" : S_PICK(&c->rng, s_religions));
        any = true;
    }
    if (s_rng_chance(&c->rng, 450)) {
        r->health = (char *) S_PICK(&c->rng, s_health);
        any = true;
    }
    if (s_rng_chance(&c->rng, 250)) {
        r->disability = (char *) S_PICK(&c->rng, s_disability);
        any = true;
    }
    if (!any || s_rng_chance(&c->rng, 200))
        r->welfare = (char *) (age >= 60 && s_rng_chance(&c->rng, 500)
                                   ? "特困供养" : S_PICK(&c->rng, s_welfare));
    return r;
}

/* Build one person from a plan. plan->year is updated to the birth year
 * actually used. */
static Gridsync__V1__Person *
s_person(s_ctx_t *c, s_person_plan_t *plan)
{
    const gs_gen_t *g = c->gen;
    s_rng_t *r = &c->rng;
    Gridsync__V1__Person *p = s_alloc(c, sizeof(*p));
    gridsync__v1__person__init(p);

    s_slot_parts_t sp = s_slot_parts(g, plan->slot);
    int year = s_birth_year(g, sp.year_class, plan->year);
    plan->year = year;
    int month, day;
    s_doy_month_day(sp.doy, &month, &day);
    int64_t birth_days = gs_days_from_civil(year, month, day);
    int age = g->this_year - year;
    p->birth_date = s_date_dup(c, birth_days);
    p->sex = (Gridsync__V1__Sex) plan->sex;
    p->population_type = (Gridsync__V1__PopulationType) plan->pop;
    p->relation = (Gridsync__V1__Relation) plan->relation;

    s_buf_t b = {0};
    switch (plan->doc) {
    case S_DOC_RESIDENT: {
        char id[19];
        gs_gen_idnum(plan->area, year * 10000 + month * 100 + day, plan->sex,
                     sp.seq, id);
        p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
        p->id_number = s_dup(c, id);
        break;
    }
    case S_DOC_PASSPORT:
        /* multiplying by a unit modulo 10^8 keeps numbers distinct */
        s_buf_char(&b, plan->nation->passport);
        s_buf_num(&b, (plan->slot * 48271u + 7u) % 100000000u, 8);
        p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_PASSPORT;
        p->id_number = s_buf_dup(c, &b);
        break;
    case S_DOC_HKMO:
        s_buf_char(&b, 'H');
        s_buf_num(&b, (plan->slot * 69621u + 11u) % 100000000u, 8);
        p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_HK_MACAO_PERMIT;
        p->id_number = s_buf_dup(c, &b);
        break;
    default:
        p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE;
        break;
    }

    b.n = 0;
    b.s[0] = '\0';
    if (plan->doc == S_DOC_PASSPORT) {
        const s_nation_t *n = plan->nation;
        s_buf_add(&b, plan->sex == 1 ? S_PICK(r, n->male) : S_PICK(r, n->female));
        s_buf_char(&b, ' ');
        s_buf_add(&b, n->family[plan->surname >= 0 ? plan->surname % 4
                                                   : (int) s_rng_below(r, 4)]);
    } else {
        s_buf_name(&b, r, plan->surname, plan->sex, year);
    }
    p->name = s_buf_dup(c, &b);

    switch (plan->pop) {
    case GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED: {
        uint32_t x = s_rng_below(r, 1000);
        p->residence_status =
            x < 900 ? GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_REGISTERED
            : x < 970 ? GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_REGISTERED_ONLY
                      : GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_ONLY;
        p->hukou_region = (char *) g->district;
        if (plan->hukou_address && s_rng_chance(r, 600))
            p->hukou_address = (char *) plan->hukou_address;
        break;
    }
    case GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FOREIGN:
        p->residence_status =
            GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_ONLY;
        break;
    default:
        p->residence_status =
            GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_ONLY;
        if (plan->doc == S_DOC_RESIDENT)
            p->hukou_region = (char *) plan->area;
        break;
    }

    if (plan->doc == S_DOC_RESIDENT || plan->doc == S_DOC_NONE)
        p->ethnicity = (char *) s_ethnicity(c, plan->area);

    /* phones: most adults carry one mobile, teenagers some, children none */
    uint32_t mobile_permille = age >= 70 ? 750 : age >= 18 ? 960 : age >= 12 ? 500 : 0;
    size_t n_phones = 0;
    char *phones[3];
    if (s_rng_chance(r, mobile_permille)) {
        phones[n_phones++] = s_mobile(c);
        if (age >= 18 && s_rng_chance(r, 50))
            phones[n_phones++] = s_mobile(c);
    }
    if (plan->landline)
        phones[n_phones++] = s_landline(c);
    if (n_phones) {
        p->phones = s_phones(c, n_phones);
        memcpy(p->phones, phones, n_phones * sizeof(char *));
        p->n_phones = n_phones;
    }

    if (age >= 6 && age <= 22 && s_rng_chance(r, 800)) {
        p->occupation = (char *) "学生";
    } else if (age >= 60 && s_rng_chance(r, 600)) {
        p->occupation = (char *) "退休";
    } else if (age > 18 && age < 65 && s_rng_chance(r, 450)) {
        const char *occ = S_PICK(r, s_occupations);
        p->occupation = (char *) occ;
        if (strcmp(occ, "无业") != 0 && strcmp(occ, "自由职业") != 0
            && s_rng_chance(r, 300))
            p->workplace = s_company(c);
    }

    if (plan->pop == GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING)
        p->floating = s_floating_info(c, age, birth_days, plan->slot);
    if (plan->doc == S_DOC_PASSPORT)
        p->foreigner = s_foreigner_info(c, plan->nation, age);
    if (s_rng_chance(r, 20))
        p->restricted = s_restricted(c, age, p->ethnicity);
    return p;
}

/* ---- Record metadata ------------------------------------------------------- */

static Gridsync__V1__RecordMeta *
s_meta(s_ctx_t *c, const s_grid_t *grid)
{
    const gs_gen_t *g = c->gen;
    Gridsync__V1__RecordMeta *m = s_alloc(c, sizeof(*m));
    gridsync__v1__record_meta__init(m);
    m->collector_id = s_dup(c, grid->collector);
    m->device_id = s_dup(c, grid->device);
    uint64_t back = s_rng_next(&c->rng) % (uint64_t) (90 * S_DAY_MS);
    m->collected_at = g->opts.now_ms - (int64_t) back;
    if (m->collected_at <= 0)
        m->collected_at = 1;
    m->base_version = 0;
    m->status = GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE;
    return m;
}

/* Index i of a non-decreasing table first[0..n] with first[i] <= x <
 * first[i + 1] (empty ranges are skipped). */
static uint32_t
s_find(const uint32_t *first, uint32_t n, uint32_t x)
{
    uint32_t lo = 0, hi = n; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (first[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Street and community names of a grid, as an address starts. */
static void
s_buf_locality(s_buf_t *b, const gs_gen_t *g, const s_grid_t *grid)
{
    const s_community_t *cm = &g->communities[grid->community];
    s_buf_add(b, g->streets[cm->street].name);
    s_buf_add(b, cm->name);
}

/* ---- Households ------------------------------------------------------------ */

enum { S_CLASS_REGISTERED, S_CLASS_FLOATING, S_CLASS_FOREIGN };

/* Age range of the head, given the roles in the household. */
static void
s_head_ages(const gs_gen_t *g, const char *roles, int cls, int *lo, int *hi)
{
    int t = (int) g->year_classes;
    *lo = cls == S_CLASS_REGISTERED ? 20 : 19;
    *hi = cls == S_CLASS_REGISTERED ? 85 : 62;
    if (strchr(roles, 'G')) {
        *lo = 52 + t;
        *hi = 80;
    } else if (strchr(roles, 'C')) {
        *lo = 21 + t;
        *hi = *hi < 62 ? *hi : 62;
    }
    if (strchr(roles, 'P')) {
        if (*lo < 25)
            *lo = 25;
        *hi = 58;
    }
    if (*hi < *lo)
        *hi = *lo;
}

Gridsync__V1__Record *
gs_gen_household(const gs_gen_t *self, uint32_t i, gs_arena_t *a)
{
    assert(self && a);
    if (i >= self->n_households)
        return NULL;
    s_ctx_t c = {.gen = self, .arena = a};
    s_rng_seed(&c.rng, self->opts.seed, S_KIND_HOUSEHOLD, i);
    s_rng_t *r = &c.rng;
    const gs_gen_t *g = self;

    uint32_t gi = s_find(g->hh_first, g->n_grids, i);
    const s_grid_t *grid = &g->grids[gi];
    uint32_t k = i - g->hh_first[gi];

    Gridsync__V1__Record *rec = s_alloc(&c, sizeof(*rec));
    gridsync__v1__record__init(rec);
    Gridsync__V1__Household *h = s_alloc(&c, sizeof(*h));
    gridsync__v1__household__init(h);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
    rec->household = h;

    s_buf_t b = {0};
    s_buf_char(&b, 'H');
    s_buf_add(&b, grid->code);
    s_buf_num(&b, k, 5);
    h->household_id = s_buf_dup(&c, &b);
    h->grid_code = s_dup(&c, grid->code);

    /* the place: households fill the grid's buildings in order */
    uint32_t per_floor = grid->rooms, per_unit = grid->floors * per_floor;
    uint32_t per_building = grid->units * per_unit;
    uint32_t bno = k / per_building + 1, rest = k % per_building;
    uint32_t unit = rest / per_unit + 1;
    uint32_t floor = rest % per_unit / per_floor + 1;
    uint32_t room = floor * 100 + rest % per_floor + 1;

    b.n = 0;
    s_buf_locality(&b, g, grid);
    s_buf_add(&b, grid->road);
    s_buf_num(&b, bno, 0);
    s_buf_add(&b, "号");
    if (grid->units > 1) {
        s_buf_num(&b, unit, 0);
        s_buf_add(&b, "单元");
    }
    s_buf_num(&b, room, 0);
    s_buf_add(&b, "室");
    h->address = s_buf_dup(&c, &b);

    if (s_rng_chance(r, 920)) {
        /* community(12) grid(3) kind 1 building(4) unit(2) room(4) */
        b.n = 0;
        s_buf_add(&b, grid->code);
        s_buf_char(&b, '1');
        s_buf_num(&b, bno, 4);
        s_buf_num(&b, unit, 2);
        s_buf_num(&b, room, 4);
        h->address_code = s_buf_dup(&c, &b);
    } else {
        Gridsync__V1__RoomAddress *ra = s_alloc(&c, sizeof(*ra));
        gridsync__v1__room_address__init(ra);
        b.n = 0;
        s_buf_add(&b, grid->road);
        s_buf_num(&b, bno, 0);
        s_buf_add(&b, "号");
        ra->building = s_buf_dup(&c, &b);
        if (grid->units > 1) {
            b.n = 0;
            s_buf_num(&b, unit, 0);
            ra->unit = s_buf_dup(&c, &b);
        }
        b.n = 0;
        s_buf_num(&b, floor, 0);
        ra->floor = s_buf_dup(&c, &b);
        b.n = 0;
        s_buf_num(&b, room, 0);
        ra->room = s_buf_dup(&c, &b);
        h->room = ra;
    }

    /* who lives here */
    uint32_t float_permille = grid->village ? 640 : 340;
    uint32_t x = s_rng_below(r, 1000);
    int cls = x < 15 ? S_CLASS_FOREIGN
              : x < 15 + float_permille ? S_CLASS_FLOATING
                                        : S_CLASS_REGISTERED;
    const int *sizes = cls == S_CLASS_FOREIGN ? s_size_foreign
                       : cls == S_CLASS_FLOATING ? s_size_floating
                                                 : s_size_registered;
    size_t n = s_rng_pick(r, sizes, 6) + 1;
    const s_shape_t *shapes = s_shapes[n - 1];
    int sw[6] = {0};
    for (size_t s = 0; s < 6 && shapes[s].roles; s++)
        sw[s] = shapes[s].weight;
    const char *roles = shapes[s_rng_pick(r, sw, 6)].roles;

    bool hkmo = cls == S_CLASS_FOREIGN && s_rng_chance(r, 400);
    const s_nation_t *nation = &s_nations[s_rng_below(r, S_NATIONS)];
    const char *family_area = cls == S_CLASS_FLOATING
                                  ? S_PICK(r, s_migrant_areas) : g->district;
    bool landline = s_rng_chance(r, 100);
    if (cls == S_CLASS_REGISTERED) {
        h->is_hukou_household = true;
        b.n = 0;
        s_buf_num(&b, 100000000u + (uint64_t) i * 7u % 900000000u, 9);
        h->hukou_number = s_buf_dup(&c, &b);
    }
    char *hukou_address = NULL;
    if (cls == S_CLASS_REGISTERED) {
        b.n = 0;
        s_buf_add(&b, g->region);
        s_buf_add(&b, h->address);
        hukou_address = s_buf_dup(&c, &b);
    }

    int lo, hi;
    s_head_ages(g, roles, cls, &lo, &hi);
    int head_age = (s_rng_range(r, lo, hi) + s_rng_range(r, lo, hi) + 1) / 2;
    int t = (int) g->year_classes, now = g->this_year;
    int head_year = 0, head_sex = s_rng_chance(r, 650) ? 1 : 2;
    /* surnames: children take the father's; a grandchild its father's */
    int head_surname = (int) s_pick_surname(r);
    int spouse_surname = (int) s_pick_surname(r);
    int inlaw_surname = (int) s_pick_surname(r);
    int father_surname = head_sex == 2 && strchr(roles, 'S') ? spouse_surname
                                                             : head_surname;
    int child0_year = 0, child0_sex = 0;
    bool has_grandchild = strchr(roles, 'G') != NULL;
    bool father_done = false;

    h->members = s_alloc(&c, n * sizeof(*h->members));
    h->n_members = n;
    char local_area[7];
    for (size_t j = 0; j < n; j++) {
        char role = roles[j];
        s_person_plan_t pl = {
            .slot = (uint64_t) i * S_HH_SLOTS + j,
            .surname = -1,
            .doc = S_DOC_RESIDENT,
            .area = family_area,
            .nation = nation,
        };
        /* relation, sex, wanted birth year; parents stay >= 20 years older
         * than their children after s_birth_year moves years down by < t */
        switch (role) {
        case 'H':
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_HEAD;
            pl.year = now - head_age;
            pl.sex = head_sex;
            pl.surname = head_surname;
            pl.landline = landline;
            break;
        case 'S':
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_SPOUSE;
            pl.sex = 3 - head_sex;
            pl.year = head_year + (head_sex == 1 ? s_rng_range(r, -2, 6)
                                                 : s_rng_range(r, -6, 2));
            if (pl.year > now - 20)
                pl.year = now - 20;
            pl.surname = spouse_surname;
            break;
        case 'C': {
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_CHILD;
            pl.sex = s_rng_chance(r, 515) ? 1 : 2;
            int latest = head_year + 42 < now - 1 ? head_year + 42 : now - 1;
            if (child0_year == 0 && has_grandchild)
                latest = head_year + 30; /* old enough to be a parent */
            pl.year = s_rng_range(r, head_year + 19 + t, latest);
            if (pl.year > now - 1)
                pl.year = now - 1;
            pl.surname = father_surname;
            break;
        }
        case 'O':
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_OTHER_RELATIVE;
            pl.sex = 3 - child0_sex;
            pl.year = child0_year + s_rng_range(r, -3, 3);
            if (pl.year > now - 20)
                pl.year = now - 20;
            pl.surname = inlaw_surname;
            break;
        case 'G':
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_GRANDCHILD;
            pl.sex = s_rng_chance(r, 515) ? 1 : 2;
            pl.year = s_rng_range(r, child0_year + 19 + t, now - 1);
            if (pl.year > now - 1)
                pl.year = now - 1;
            pl.surname = child0_sex == 1 ? father_surname : inlaw_surname;
            break;
        case 'P':
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_PARENT;
            pl.sex = father_done ? 2 : 1;
            pl.year = head_year - s_rng_range(r, 22, 36);
            if (pl.sex == 1)
                pl.surname = head_surname;
            father_done = true;
            break;
        case 'B':
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_SIBLING;
            pl.sex = s_rng_chance(r, 500) ? 1 : 2;
            pl.year = head_year + s_rng_range(r, -8, 8);
            if (pl.year > now - 18)
                pl.year = now - 18;
            pl.surname = head_surname;
            break;
        default: /* 'N' */
            pl.relation = GRIDSYNC__V1__RELATION__RELATION_NON_RELATIVE;
            pl.sex = s_rng_chance(r, 500) ? 1 : 2;
            pl.year = now - s_rng_range(r, 18, 60);
            break;
        }

        /* population type and documents */
        switch (cls) {
        case S_CLASS_REGISTERED:
            pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED;
            pl.area = s_registered_area(&c, local_area,
                                        role == 'C' || role == 'G' ? 950 : 800);
            if ((role == 'S' && s_rng_chance(r, 120))
                || (role == 'P' && s_rng_chance(r, 400))
                || (role == 'B' && s_rng_chance(r, 500))) {
                pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
                pl.area = S_PICK(r, s_migrant_areas);
            } else if (role == 'N') {
                pl.pop = s_rng_chance(r, 600)
                             ? GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_LODGING
                             : GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
                pl.area = S_PICK(r, s_migrant_areas);
            } else {
                pl.hukou_address = hukou_address;
            }
            break;
        case S_CLASS_FLOATING:
            pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
            if ((role == 'S' && s_rng_chance(r, 400)) || role == 'N')
                pl.area = S_PICK(r, s_migrant_areas);
            break;
        default:
            pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FOREIGN;
            pl.doc = hkmo ? S_DOC_HKMO : S_DOC_PASSPORT;
            if (role == 'S' && s_rng_chance(r, 300)) {
                /* married to a local */
                pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED;
                pl.doc = S_DOC_RESIDENT;
                pl.area = g->district;
            }
            break;
        }
        /* a few people have no documents at all (未落户) */
        if (pl.doc == S_DOC_RESIDENT && s_rng_chance(r, 2)) {
            pl.doc = S_DOC_NONE;
            pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_UNSETTLED;
        }

        h->members[j] = s_person(&c, &pl);
        if (role == 'H')
            head_year = pl.year;
        else if (role == 'C' && child0_year == 0) {
            child0_year = pl.year;
            child0_sex = pl.sex;
        }
    }
    h->meta = s_meta(&c, grid);
    return c.failed ? NULL : rec;
}

/* ---- Rental housing ---------------------------------------------------------- */

/* One of the grid's three inspectors (the same names recur in a grid). */
static const char *
s_inspector(s_ctx_t *c, uint32_t gi, s_buf_t *b)
{
    s_rng_t r;
    s_rng_seed(&r, c->gen->opts.seed, S_KIND_INSPECTOR,
               (uint64_t) gi * 4 + s_rng_below(&c->rng, 3));
    int sex = s_rng_chance(&r, 600) ? 1 : 2;
    b->n = 0;
    s_buf_name(b, &r, -1, sex, 1985);
    return b->s;
}

/* The parts of a rental unit that belong to its building: the same bytes
 * for every unit of the building. */
typedef struct s_building_parts {
    Gridsync__V1__Building *building;   /* id, name, floors, head */
    Gridsync__V1__Landlord *landlord;   /* person or organisation */
    bool access_control;                /* 门禁 installed */
} s_building_parts_t;

static void
s_building_parts(s_ctx_t *c, uint32_t bi, uint32_t gi, uint32_t nunits,
                 s_building_parts_t *out)
{
    const gs_gen_t *g = c->gen;
    const s_grid_t *grid = &g->grids[gi];
    const s_community_t *cm = &g->communities[grid->community];
    s_rng_seed(&c->rng, g->opts.seed, S_KIND_BUILDING, bi);
    s_rng_t *r = &c->rng;
    uint32_t in_grid = bi - g->bld_first[gi];

    Gridsync__V1__Building *bd = s_alloc(c, sizeof(*bd));
    gridsync__v1__building__init(bd);
    s_buf_t b = {0};
    s_buf_char(&b, 'B');
    s_buf_add(&b, grid->code);
    s_buf_char(&b, '-');
    s_buf_num(&b, in_grid + 1, 4);
    bd->building_id = s_buf_dup(c, &b);

    b.n = 0;
    if (grid->village) {
        /* 握手楼 of an urban village, in 坊 named after the grid */
        bd->floors = (uint32_t) s_rng_range(r, 4, 9);
        s_buf_add(&b, cm->place);
        s_buf_add(&b, "村");
        s_buf_num(&b, grid->number, 0);
        s_buf_add(&b, "坊");
        s_buf_num(&b, in_grid + 1, 0);
        s_buf_add(&b, "栋");
    } else {
        bd->floors = (uint32_t) s_rng_range(r, 5, 32);
        s_buf_add(&b, grid->road);
        s_buf_num(&b, 100 + in_grid, 0);
        s_buf_add(&b, "号");
        if (s_rng_chance(r, 200)) {
            s_buf_place(&b, s_rng_below(r, 2000));
            s_buf_add(&b, "公寓");
        }
    }
    if (bd->floors * 8 < nunits)
        bd->floors = (nunits + 7) / 8;
    bd->name = s_buf_dup(c, &b);

    if (s_rng_chance(r, 880)) {
        Gridsync__V1__BuildingHead *head = s_alloc(c, sizeof(*head));
        gridsync__v1__building_head__init(head);
        b.n = 0;
        s_buf_name(&b, r, -1, s_rng_chance(r, 550) ? 1 : 2, 1970);
        head->name = s_buf_dup(c, &b);
        head->phone = s_mobile(c);
        bd->head = head;
    }
    out->building = bd;

    Gridsync__V1__Landlord *ll = s_alloc(c, sizeof(*ll));
    gridsync__v1__landlord__init(ll);
    if (s_rng_chance(r, grid->village ? 850 : 750)) {
        /* village landlords are mostly older local residents */
        char area_buf[7];
        s_person_plan_t pl = {
            .slot = g->slot_landlords + bi,
            .year = g->this_year - s_rng_range(r, grid->village ? 40 : 30, 80),
            .sex = s_rng_chance(r, 600) ? 1 : 2,
            .pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED,
            .doc = S_DOC_RESIDENT,
            .surname = -1,
        };
        pl.area = s_registered_area(c, area_buf, grid->village ? 950 : 700);
        ll->party_case = GRIDSYNC__V1__LANDLORD__PARTY_PERSON;
        ll->person = s_person(c, &pl);
    } else {
        Gridsync__V1__Organisation *o = s_alloc(c, sizeof(*o));
        gridsync__v1__organisation__init(o);
        /* 9 = registered with market regulation, 1 = enterprise, then the
         * district, a 9-character organisation code and the check */
        char uscc[19];
        uscc[0] = '9';
        uscc[1] = '1';
        memcpy(uscc + 2, g->district, 6);
        static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
        uint64_t v = (uint64_t) bi * 1000003u + 12345u;
        for (int pos = 16; pos >= 8; pos--) {
            uscc[pos] = alphabet[v % 31];
            v /= 31;
        }
        uscc[17] = '\0';
        uscc[17] = gs_uscc_check_char(uscc);
        uscc[18] = '\0';
        o->uscc = s_dup(c, uscc);
        b.n = 0;
        if (grid->village && s_rng_chance(r, 600)) {
            s_buf_add(&b, g->city);
            s_buf_add(&b, cm->place);
            s_buf_add(&b, "股份合作公司");
        } else {
            s_buf_add(&b, g->city);
            s_buf_place(&b, s_rng_below(r, 2000));
            s_buf_add(&b, s_rng_chance(r, 500) ? "公寓管理有限公司"
                                                : "物业管理有限公司");
        }
        o->name = s_buf_dup(c, &b);
        b.n = 0;
        s_buf_name(&b, r, -1, s_rng_chance(r, 500) ? 1 : 2, 1980);
        o->contact_name = s_buf_dup(c, &b);
        o->contact_phone = s_rng_chance(r, 300) ? s_landline(c) : s_mobile(c);
        ll->party_case = GRIDSYNC__V1__LANDLORD__PARTY_ORGANISATION;
        ll->organisation = o;
    }
    out->landlord = ll;
    out->access_control = s_rng_chance(r, grid->village ? 750 : 600);
}

static Gridsync__V1__Lease *
s_lease(s_ctx_t *c, uint32_t unit, uint32_t j)
{
    const gs_gen_t *g = c->gen;
    s_rng_t *r = &c->rng;
    Gridsync__V1__Lease *l = s_alloc(c, sizeof(*l));
    gridsync__v1__lease__init(l);
    s_person_plan_t pl = {
        .slot = g->slot_tenants + (uint64_t) unit * S_UNIT_SLOTS + j,
        .year = g->this_year - s_rng_range(r, 18, 58),
        .sex = s_rng_chance(r, 560) ? 1 : 2,
        .doc = S_DOC_RESIDENT,
        .surname = -1,
        .nation = &s_nations[s_rng_below(r, S_NATIONS)],
    };
    char area_buf[7];
    uint32_t x = s_rng_below(r, 1000);
    if (x < 20) {
        pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FOREIGN;
        pl.doc = S_DOC_PASSPORT;
    } else if (x < 170) {
        pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED;
        pl.area = s_registered_area(c, area_buf, 700);
    } else {
        pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
        pl.area = S_PICK(r, s_migrant_areas);
    }
    if (pl.doc == S_DOC_RESIDENT && s_rng_chance(r, 3)) {
        pl.doc = S_DOC_NONE;
        pl.pop = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_UNSETTLED;
    }
    l->tenant = s_person(c, &pl);
    int64_t start = g->today - s_rng_range(r, 0, 4 * 365);
    l->start_date = s_date_dup(c, start);
    if (!s_rng_chance(r, 150)) {
        static const int terms[] = {182, 365, 365, 365, 730, 1095};
        l->end_date = s_date_dup(c, start + S_PICK(r, terms) - 1);
    }
    return l;
}

static Gridsync__V1__Inspection *
s_inspection(s_ctx_t *c, uint32_t gi, int64_t date)
{
    const gs_gen_t *g = c->gen;
    s_rng_t *r = &c->rng;
    Gridsync__V1__Inspection *in = s_alloc(c, sizeof(*in));
    gridsync__v1__inspection__init(in);
    in->date = s_date_dup(c, date);
    s_buf_t b = {0};
    in->inspector = s_dup(c, s_inspector(c, gi, &b));
    Gridsync__V1__CheckResult *items[5] = {&in->fire, &in->security,
                                           &in->environment, &in->management,
                                           &in->integrity};
    for (int k = 0; k < 5; k++)
        *items[k] = s_rng_chance(r, 920) ? GRIDSYNC__V1__CHECK_RESULT__CHECK_RESULT_PASS
                                         : GRIDSYNC__V1__CHECK_RESULT__CHECK_RESULT_FAIL;
    static const int hazard_weights[] = {70, 22, 8};
    size_t nh = s_rng_pick(r, hazard_weights, 3);
    if (nh) {
        in->fire = GRIDSYNC__V1__CHECK_RESULT__CHECK_RESULT_FAIL;
        in->hazards = s_alloc(c, nh * sizeof(*in->hazards));
        in->n_hazards = nh;
        uint32_t first = s_rng_below(r, sizeof(s_hazards) / sizeof(s_hazards[0]));
        for (size_t k = 0; k < nh; k++) {
            Gridsync__V1__Hazard *hz = s_alloc(c, sizeof(*hz));
            gridsync__v1__hazard__init(hz);
            hz->description = (char *) s_hazards[(first + k)
                                                 % (sizeof(s_hazards) / sizeof(s_hazards[0]))];
            if (s_rng_chance(r, 700)) {
                int64_t fixed = date + s_rng_range(r, 1, 30);
                if (fixed <= g->today) {
                    hz->rectified = true;
                    hz->rectified_date = s_date_dup(c, fixed);
                }
            }
            in->hazards[k] = hz;
        }
    }
    return in;
}

Gridsync__V1__Record *
gs_gen_rental(const gs_gen_t *self, uint32_t i, gs_arena_t *a)
{
    assert(self && a);
    if (i >= self->n_units)
        return NULL;
    const gs_gen_t *g = self;
    s_ctx_t c = {.gen = self, .arena = a};

    uint32_t bi = s_find(g->unit_first, g->n_buildings, i);
    uint32_t gi = s_find(g->bld_first, g->n_grids, bi);
    const s_grid_t *grid = &g->grids[gi];
    uint32_t nunits = g->unit_first[bi + 1] - g->unit_first[bi];
    uint32_t u = i - g->unit_first[bi];
    uint32_t k = i - g->unit_first[g->bld_first[gi]];
    uint32_t in_grid = bi - g->bld_first[gi];

    s_building_parts_t bp;
    s_building_parts(&c, bi, gi, nunits, &bp);

    s_rng_seed(&c.rng, g->opts.seed, S_KIND_RENTAL, i);
    s_rng_t *r = &c.rng;
    Gridsync__V1__Record *rec = s_alloc(&c, sizeof(*rec));
    gridsync__v1__record__init(rec);
    Gridsync__V1__RentalHousing *rh = s_alloc(&c, sizeof(*rh));
    gridsync__v1__rental_housing__init(rh);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_RENTAL;
    rec->rental = rh;

    s_buf_t b = {0};
    s_buf_char(&b, 'R');
    s_buf_add(&b, grid->code);
    s_buf_num(&b, k, 5);
    rh->house_id = s_buf_dup(&c, &b);
    rh->grid_code = s_dup(&c, grid->code);
    rh->building = bp.building;
    rh->landlord = bp.landlord;
    rh->access_control = bp.access_control;

    uint32_t per_floor = (nunits + bp.building->floors - 1) / bp.building->floors;
    uint32_t floor = 1 + u / per_floor;
    uint32_t room = floor * 100 + u % per_floor + 1;

    b.n = 0;
    s_buf_locality(&b, g, grid);
    s_buf_add(&b, bp.building->name);
    s_buf_num(&b, room, 0);
    s_buf_add(&b, "房");
    rh->address = s_buf_dup(&c, &b);
    if (s_rng_chance(r, 950)) {
        /* community(12) grid(3) kind 2 building(4) 00 room(4) */
        b.n = 0;
        s_buf_add(&b, grid->code);
        s_buf_char(&b, '2');
        s_buf_num(&b, in_grid + 1, 4);
        s_buf_add(&b, "00");
        s_buf_num(&b, room, 4);
        rh->address_code = s_buf_dup(&c, &b);
    } else {
        Gridsync__V1__RoomAddress *ra = s_alloc(&c, sizeof(*ra));
        gridsync__v1__room_address__init(ra);
        ra->building = bp.building->name;
        b.n = 0;
        s_buf_num(&b, floor, 0);
        ra->floor = s_buf_dup(&c, &b);
        b.n = 0;
        s_buf_num(&b, room, 0);
        ra->room = s_buf_dup(&c, &b);
        rh->room = ra;
    }

    static const int use_weights[] = {0, 82, 7, 7, 4};
    rh->use = (Gridsync__V1__UnitUse) s_rng_pick(r, use_weights, 5);
    int lo = 10, hi = grid->village ? 45 : 90;
    if (rh->use == GRIDSYNC__V1__UNIT_USE__UNIT_USE_COMMERCIAL)
        lo = 20, hi = 120;
    else if (rh->use == GRIDSYNC__V1__UNIT_USE__UNIT_USE_FACTORY_DORM)
        lo = 15, hi = 60;
    int tenths = s_rng_range(r, lo * 10, hi * 10);
    rh->area_m2 = tenths / 10.0;
    rh->room_count = tenths < 250 ? 1
                     : tenths < 500 ? (uint32_t) s_rng_range(r, 1, 2)
                     : tenths < 800 ? (uint32_t) s_rng_range(r, 2, 3)
                                    : (uint32_t) s_rng_range(r, 3, 4);

    static const int lease_weights[] = {12, 50, 22, 10, 6};
    static const int dorm_weights[] = {5, 15, 20, 30, 30};
    size_t nl = s_rng_pick(r, rh->use == GRIDSYNC__V1__UNIT_USE__UNIT_USE_FACTORY_DORM
                                  ? dorm_weights : lease_weights, 5);
    if (nl) {
        rh->leases = s_alloc(&c, nl * sizeof(*rh->leases));
        rh->n_leases = nl;
        for (uint32_t j = 0; j < nl; j++)
            rh->leases[j] = s_lease(&c, i, j);
    }

    static const int insp_weights[] = {30, 40, 20, 10};
    size_t ni = s_rng_pick(r, insp_weights, 4);
    if (ni) {
        int64_t dates[3];
        for (size_t j = 0; j < ni; j++)
            dates[j] = g->today - s_rng_range(r, 0, 730);
        for (size_t j = 1; j < ni; j++) /* oldest first */
            for (size_t m = j; m > 0 && dates[m - 1] > dates[m]; m--) {
                int64_t tmp = dates[m];
                dates[m] = dates[m - 1];
                dates[m - 1] = tmp;
            }
        rh->inspections = s_alloc(&c, ni * sizeof(*rh->inspections));
        rh->n_inspections = ni;
        for (size_t j = 0; j < ni; j++)
            rh->inspections[j] = s_inspection(&c, gi, dates[j]);
    }
    rh->meta = s_meta(&c, grid);
    return c.failed ? NULL : rec;
}

/* ---- Organisations (实有单位) ---------------------------------------------------- */

/* What an organisation of a given industry is called: GB/T 4754 code and
 * the end of its name. */
static const struct {
    const char *industry;
    const char *suffix;
} s_trades[] = {
    {"F5261", "便利店"},     {"F5221", "生鲜超市"},   {"H6210", "餐馆"},
    {"H6220", "快餐店"},     {"O8010", "美发店"},     {"F5273", "五金店"},
    {"O8090", "洗衣店"},     {"I6510", "科技有限公司"}, {"L7212", "物业服务有限公司"},
    {"E4790", "装饰工程有限公司"}, {"G5433", "物流有限公司"}, {"Q8423", "诊所"},
    {"P8391", "培训中心"},   {"C1331", "食品厂"},     {"F5131", "服装批发部"},
};

/* An organisation's class, from its index alone (a branch needs the class
 * of another organisation without building it). */
typedef struct s_org_class {
    int kind;                   /* OrgKind */
    bool registered;            /* has a USCC */
    bool branch;                /* shares the USCC of an organisation elsewhere */
} s_org_class_t;

static s_org_class_t
s_org_class(const gs_gen_t *g, uint32_t i)
{
    s_rng_t r;
    s_rng_seed(&r, g->opts.seed, S_KIND_ORG_CLASS, i);
    static const int kind_weights[] = {0, 55, 33, 5, 5, 2};
    s_org_class_t c;
    c.kind = (int) s_rng_pick(&r, kind_weights, 6);
    /* a third of the 个体 trade at a stall without registering */
    c.registered = c.kind != GRIDSYNC__V1__ORG_KIND__ORG_KIND_INDIVIDUAL_BUSINESS
                   || !s_rng_chance(&r, 330);
    c.branch = c.kind == GRIDSYNC__V1__ORG_KIND__ORG_KIND_ENTERPRISE && s_rng_chance(&r, 50);
    return c;
}

/* The USCC of organisation i: registration category (91 企业, 92 个体工商户,
 * 52 民办非企业, 12 事业单位, 11 机关), the district, nine characters
 * unique to i, and the GB 32100 check character. */
static char *
s_org_uscc(s_ctx_t *c, uint32_t i, int kind)
{
    static const char *const category[] = {"93", "91", "92", "52", "12", "11"};
    char u[19];
    memcpy(u, category[kind <= 5 ? kind : 0], 2);
    memcpy(u + 2, c->gen->district, 6);
    /* multiplying by a unit modulo 10^9 keeps codes distinct */
    uint64_t x = ((uint64_t) i * 7919u + 12345u) % 1000000000u;
    for (int k = 16; k >= 8; k--, x /= 10)
        u[k] = (char) ('0' + x % 10);
    u[17] = gs_uscc_check_char(u);
    u[18] = '\0';
    return s_dup(c, u);
}

/* The organisation whose USCC branch i shares: the next registered,
 * non-branch enterprise half the district away (in another grid). */
static uint32_t
s_org_head_office(const gs_gen_t *g, uint32_t i)
{
    uint32_t n = g->n_orgs;
    for (uint32_t t = 0; t < n; t++) {
        uint32_t j = (uint32_t) (((uint64_t) i + n / 2 + t) % n);
        s_org_class_t c = s_org_class(g, j);
        if (j != i && c.registered && !c.branch
            && c.kind == GRIDSYNC__V1__ORG_KIND__ORG_KIND_ENTERPRISE)
            return j;
    }
    return i;
}

/* A household head of the district as an employee or representative: the
 * same person (same ID number) the household lists, without the relation
 * to the household head. NULL when the district has no households. */
static Gridsync__V1__Person *
s_org_person(s_ctx_t *c, uint32_t household)
{
    const gs_gen_t *g = c->gen;
    if (g->n_households == 0)
        return NULL;
    Gridsync__V1__Record *h = gs_gen_household(g, household % g->n_households, c->arena);
    if (!h) {
        c->failed = true;
        return NULL;
    }
    Gridsync__V1__Person *head = h->household->members[0];
    for (size_t k = 0; k < h->household->n_members; k++)
        if (h->household->members[k]->relation == GRIDSYNC__V1__RELATION__RELATION_HEAD)
            head = h->household->members[k];
    Gridsync__V1__Person *p = s_alloc(c, sizeof(*p));
    *p = *head;
    p->relation = GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED;
    return p;
}

Gridsync__V1__Record *
gs_gen_org(const gs_gen_t *self, uint32_t i, gs_arena_t *a)
{
    assert(self && a);
    if (i >= self->n_orgs)
        return NULL;
    const gs_gen_t *g = self;
    s_ctx_t c = {.gen = self, .arena = a};
    uint32_t gi = s_find(g->org_first, g->n_grids, i);
    const s_grid_t *grid = &g->grids[gi];
    uint32_t k = i - g->org_first[gi];
    s_org_class_t cls = s_org_class(g, i);

    s_rng_seed(&c.rng, g->opts.seed, S_KIND_ORG, i);
    s_rng_t *r = &c.rng;
    Gridsync__V1__Record *rec = s_alloc(&c, sizeof(*rec));
    gridsync__v1__record__init(rec);
    Gridsync__V1__OrganisationUnit *o = s_alloc(&c, sizeof(*o));
    gridsync__v1__organisation_unit__init(o);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_ORGANISATION;
    rec->organisation = o;

    s_buf_t b = {0};
    s_buf_char(&b, 'O');
    s_buf_add(&b, grid->code);
    s_buf_num(&b, k, 5);
    o->org_id = s_buf_dup(&c, &b);
    o->grid_code = s_dup(&c, grid->code);
    o->kind = (Gridsync__V1__OrgKind) cls.kind;

    /* name and industry; a branch is named after its head office */
    uint32_t named = cls.branch ? s_org_head_office(g, i) : i;
    s_rng_t nr;
    s_rng_seed(&nr, g->opts.seed, S_KIND_ORG_CLASS, (uint64_t) named + 0x9e3779b9ull);
    uint32_t trade = s_rng_below(&nr, sizeof(s_trades) / sizeof(s_trades[0]));
    o->industry = (char *) s_trades[trade].industry;
    b.n = 0;
    if (cls.kind == GRIDSYNC__V1__ORG_KIND__ORG_KIND_PUBLIC_INSTITUTION) {
        s_buf_add(&b, g->communities[grid->community].name);
        s_buf_add(&b, "卫生服务站");
        o->industry = (char *) "Q8421";
    } else if (cls.kind == GRIDSYNC__V1__ORG_KIND__ORG_KIND_GOVERNMENT) {
        s_buf_add(&b, g->communities[grid->community].name);
        s_buf_add(&b, "警务室");
        o->industry = (char *) "S9224";
    } else if (cls.kind == GRIDSYNC__V1__ORG_KIND__ORG_KIND_SOCIAL_ORGANISATION) {
        s_buf_place(&b, s_rng_below(&nr, 2000));
        s_buf_add(&b, "社工服务中心");
        o->industry = (char *) "S9522";
    } else {
        if (cls.kind == GRIDSYNC__V1__ORG_KIND__ORG_KIND_ENTERPRISE)
            s_buf_add(&b, g->city);
        s_buf_place(&b, s_rng_below(&nr, 2000));
        s_buf_add(&b, s_trades[trade].suffix);
        if (cls.branch) {
            s_buf_add(&b, "（");
            s_buf_add(&b, g->communities[grid->community].place);
            s_buf_add(&b, "分店）");
        }
    }
    o->name = s_buf_dup(&c, &b);
    if (cls.registered)
        o->uscc = s_org_uscc(&c, named, cls.kind);

    uint32_t x = s_rng_below(r, 1000);
    o->status = x < 900 ? GRIDSYNC__V1__ORG_STATUS__ORG_STATUS_OPERATING
                : x < 960 ? GRIDSYNC__V1__ORG_STATUS__ORG_STATUS_SUSPENDED
                          : GRIDSYNC__V1__ORG_STATUS__ORG_STATUS_CLOSED;

    /* the place: shop fronts along the grid's road, stalls in its market */
    b.n = 0;
    s_buf_locality(&b, g, grid);
    if (!cls.registered) {
        s_buf_add(&b, grid->road);
        s_buf_add(&b, "农贸市场");
        s_buf_num(&b, k + 1, 0);
        s_buf_add(&b, "号档口");
        o->address = s_buf_dup(&c, &b);
        Gridsync__V1__RoomAddress *ra = s_alloc(&c, sizeof(*ra));
        gridsync__v1__room_address__init(ra);
        b.n = 0;
        s_buf_add(&b, grid->road);
        s_buf_add(&b, "农贸市场");
        ra->building = s_buf_dup(&c, &b);
        b.n = 0;
        s_buf_add(&b, "档口");
        s_buf_num(&b, k + 1, 0);
        ra->room = s_buf_dup(&c, &b);
        o->room = ra;
    } else {
        s_buf_add(&b, grid->road);
        s_buf_num(&b, k * 2 + 1, 0);
        s_buf_add(&b, "号商铺");
        o->address = s_buf_dup(&c, &b);
        /* community(12) grid(3) kind 3 shop(8) */
        b.n = 0;
        s_buf_add(&b, grid->code);
        s_buf_char(&b, '3');
        s_buf_num(&b, k + 1, 8);
        o->address_code = s_buf_dup(&c, &b);
    }

    /* people: household heads of the district, most living in other grids */
    static const int staff_lo[6] = {0, 2, 1, 1, 3, 2}, staff_hi[6] = {0, 12, 4, 5, 15, 6};
    int ne = cls.registered ? s_rng_range(r, staff_lo[cls.kind], staff_hi[cls.kind])
                            : s_rng_range(r, 0, 2);
    if (g->n_households <= (uint32_t) ne)
        ne = g->n_households ? (int) g->n_households - 1 : 0;   /* a tiny district */
    uint32_t hf = g->hh_first[gi], hn = g->hh_first[gi + 1] - hf;
    uint32_t base = hn && s_rng_chance(r, 400) ? hf + s_rng_below(r, hn)
                                              : s_rng_below(r, g->n_households ? g->n_households : 1);
    /* consecutive households are different households, so different people */
    o->legal_representative = s_org_person(&c, base);
    if (o->legal_representative && ne > 0) {
        o->employees = s_alloc(&c, (size_t) ne * sizeof(*o->employees));
        for (int j = 0; j < ne; j++)
            o->employees[j] = s_org_person(&c, base + 1 + (uint32_t) j);
        o->n_employees = (size_t) ne;
    }
    if (o->legal_representative && cls.registered)
        o->contact = ne > 0 && s_rng_chance(r, 500) ? o->employees[0] : o->legal_representative;
    if (s_rng_chance(r, 700)) {
        o->phones = s_phones(&c, 1);
        o->phones[0] = s_rng_chance(r, 600) ? s_landline(&c) : s_mobile(&c);
        o->n_phones = 1;
    }

    static const int insp_weights[] = {40, 45, 15};
    size_t ni = s_rng_pick(r, insp_weights, 3);
    if (ni) {
        int64_t d0 = g->today - s_rng_range(r, 0, 365);
        int64_t d1 = d0 - s_rng_range(r, 30, 365);
        o->inspections = s_alloc(&c, ni * sizeof(*o->inspections));
        o->n_inspections = ni;
        o->inspections[0] = s_inspection(&c, gi, ni == 2 ? d1 : d0);
        if (ni == 2)
            o->inspections[1] = s_inspection(&c, gi, d0);
    }
    o->access_control = s_rng_chance(r, 400);
    o->meta = s_meta(&c, grid);
    return c.failed ? NULL : rec;
}

/* ---- Layout ------------------------------------------------------------------ */

void
gs_gen_opts_init(gs_gen_opts_t *o)
{
    assert(o);
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->district = "440305";
    o->streets = 8;
    o->grids = 1372;
    o->households = 139000;
    o->rental_buildings = 13055;
    o->units_per_building = 4;
    o->organisations = 8232;
    o->now_ms = gs_days_from_civil(2026, 6, 1) * S_DAY_MS - S_CST_MS;
}

/* Split total into n parts in proportion to weights, each at least min,
 * writing the running starts to first[0..n] (first[n] == total). Requires
 * total >= min * n. */
static void
s_split(uint32_t total, uint32_t n, const uint32_t *weights, uint32_t min,
        uint32_t *first)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += weights[i];
    uint64_t spare = total - (uint64_t) min * n, cum = 0;
    for (uint32_t i = 0; i < n; i++) {
        first[i] = (uint32_t) ((uint64_t) min * i
                               + (sum ? spare * cum / sum : spare * i / n));
        cum += weights[i];
    }
    first[n] = total;
}

typedef struct s_ranked {
    uint64_t key;               /* random key */
    uint32_t index;             /* community index */
} s_ranked_t;

static int
s_ranked_cmp(const void *a, const void *b)
{
    const s_ranked_t *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static bool
s_digits6(const char *s)
{
    if (!s || strlen(s) != 6)
        return false;
    for (int i = 0; i < 6; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Fill the street, community and grid tables. False on bad options. */
static bool
s_layout_hierarchy(gs_gen_t *g)
{
    uint64_t seed = g->opts.seed;
    uint32_t S = g->n_streets, G = g->n_grids;
    uint32_t *w = calloc(G > S ? G : S, sizeof(uint32_t));
    uint32_t *sfirst = calloc(S + 1, sizeof(uint32_t));
    if (!w || !sfirst) {
        free(w);
        free(sfirst);
        return false;
    }
    s_rng_t r;
    for (uint32_t s = 0; s < S; s++) {
        s_rng_seed(&r, seed, S_KIND_STREET, s);
        w[s] = 70 + s_rng_below(&r, 61);
    }
    s_split(G, S, w, 1, sfirst);

    /* communities: about 11 grids each */
    uint32_t total_comm = 0;
    for (uint32_t s = 0; s < S; s++) {
        uint32_t ng = sfirst[s + 1] - sfirst[s];
        total_comm += ng / 11 ? (ng + 5) / 11 : 1;
    }
    g->n_communities = total_comm;
    g->communities = calloc(total_comm, sizeof(s_community_t));
    if (!g->communities) {
        free(w);
        free(sfirst);
        return false;
    }

    bool ok = true;
    uint32_t cbase = 0;
    for (uint32_t s = 0; s < S && ok; s++) {
        uint32_t code = s + 1; /* 001..099 街道, 100..199 镇, 200..399 乡 */
        s_buf_t b = {0};
        if (s < sizeof(s_default_streets) / sizeof(s_default_streets[0]))
            s_buf_add(&b, s_default_streets[s]);
        else
            s_buf_place(&b, s * 13 + 1);
        s_buf_add(&b, code < 100 ? "街道" : code < 200 ? "镇" : "乡");
        s_copy_buf(g->streets[s].name, sizeof(g->streets[s].name), &b);

        uint32_t ng = sfirst[s + 1] - sfirst[s];
        uint32_t nc = ng / 11 ? (ng + 5) / 11 : 1;
        if (nc > 999) {
            ok = false;
            break;
        }
        uint32_t cfirst_local[1000];
        for (uint32_t k = 0; k < nc; k++) {
            s_rng_seed(&r, seed, S_KIND_COMMUNITY, cbase + k);
            w[k] = 80 + s_rng_below(&r, 41);
        }
        s_split(ng, nc, w, 1, cfirst_local);
        for (uint32_t k = 0; k < nc; k++) {
            s_community_t *cm = &g->communities[cbase + k];
            cm->street = s;
            b.n = 0;
            s_buf_place(&b, ((cbase + k) * 11 + 5) % (47 * 48));
            s_copy_buf(cm->place, sizeof(cm->place), &b);
            s_buf_add(&b, "社区");
            s_copy_buf(cm->name, sizeof(cm->name), &b);
            uint32_t m = cfirst_local[k + 1] - cfirst_local[k];
            if (m > 999) {
                ok = false;
                break;
            }
            for (uint32_t n = 0; n < m; n++) {
                uint32_t gi = sfirst[s] + cfirst_local[k] + n;
                s_grid_t *grid = &g->grids[gi];
                grid->community = cbase + k;
                grid->number = n + 1;
                /* district(6) street(3) community(3) grid(3) */
                b.n = 0;
                s_buf_add(&b, g->district);
                s_buf_num(&b, code, 3);
                s_buf_num(&b, k + 1, 3);
                s_buf_num(&b, n + 1, 3);
                s_copy_buf(grid->code, sizeof(grid->code), &b);
                b.n = 0;
                s_buf_add(&b, cm->name);
                s_buf_add(&b, "第");
                s_buf_num(&b, n + 1, 0);
                s_buf_add(&b, "网格");
                s_copy_buf(grid->name, sizeof(grid->name), &b);
            }
        }
        cbase += nc;
    }
    free(w);
    free(sfirst);
    return ok;
}

/* Per-grid details, household counts, rental buildings and units. */
static bool
s_layout_records(gs_gen_t *g)
{
    uint64_t seed = g->opts.seed;
    uint32_t G = g->n_grids, C = g->n_communities;

    /* urban villages: a third of the communities, at most 40 */
    uint32_t nv = C / 3 < 40 ? C / 3 : 40;
    s_ranked_t *rank = calloc(C, sizeof(*rank));
    uint32_t *w = calloc(G, sizeof(uint32_t));
    if (!rank || !w) {
        free(rank);
        free(w);
        return false;
    }
    for (uint32_t k = 0; k < C; k++) {
        rank[k].key = s_mix(seed ^ s_mix(0xc0ffee00ULL + k));
        rank[k].index = k;
    }
    qsort(rank, C, sizeof(*rank), s_ranked_cmp);
    for (uint32_t k = 0; k < nv; k++)
        g->communities[rank[k].index].village = true;
    free(rank);

    s_rng_t r;
    static const char *const road_kinds[] = {"路", "街", "大道"};
    static const char *const road_prefix[] = {"", "东", "西", "南", "北", "中", "新"};
    for (uint32_t gi = 0; gi < G; gi++) {
        s_grid_t *grid = &g->grids[gi];
        s_rng_seed(&r, seed, S_KIND_GRID, gi);
        grid->village = g->communities[grid->community].village
                        && s_rng_chance(&r, 650);
        if (grid->village) {
            grid->units = 1;
            grid->floors = (uint8_t) s_rng_range(&r, 4, 8);
            grid->rooms = (uint8_t) s_rng_range(&r, 2, 4);
        } else {
            grid->units = (uint8_t) s_rng_range(&r, 1, 4);
            grid->floors = (uint8_t) s_rng_range(&r, 6, 33);
            grid->rooms = (uint8_t) s_rng_range(&r, 2, 6);
        }
        /* a road name no other grid has: 7 is a unit modulo 47 * 48 */
        s_buf_t b = {0};
        s_buf_add(&b, road_prefix[(gi / (47 * 48)) % 7]);
        s_buf_place(&b, (gi * 7u + 3u) % (47 * 48));
        s_buf_add(&b, S_PICK(&r, road_kinds));
        s_copy_buf(grid->road, sizeof(grid->road), &b);
        b.n = 0;
        s_buf_add(&b, "dev-");
        s_buf_add(&b, grid->code);
        s_copy_buf(grid->device, sizeof(grid->device), &b);
        b.n = 0;
        s_buf_add(&b, "col-");
        s_buf_add(&b, grid->code);
        s_copy_buf(grid->collector, sizeof(grid->collector), &b);

        /* households: mostly 60..180 per grid, skewed to the low end */
        uint32_t t = s_rng_below(&r, 1024) + s_rng_below(&r, 1024);
        w[gi] = 6000 + (uint32_t) (12000ull * t * t / (2046ull * 2046ull));
    }
    s_split(g->n_households, G, w, 0, g->hh_first);

    for (uint32_t gi = 0; gi < G; gi++) {
        s_rng_seed(&r, seed ^ 0x5bd1e995ULL, S_KIND_GRID, gi);
        w[gi] = g->grids[gi].village ? 25 + s_rng_below(&r, 36)
                                     : 1 + s_rng_below(&r, 3);
    }
    s_split(g->n_buildings, G, w, 0, g->bld_first);
    free(w);

    /* units per building: 1 + a gamma(2) draw with the wanted mean */
    double m = (double) g->opts.units_per_building;
    uint32_t cap = 3 * g->opts.units_per_building;
    uint64_t total = 0;
    for (uint32_t bi = 0; bi < g->n_buildings; bi++) {
        s_rng_seed(&r, seed, S_KIND_BUILDING_UNITS, bi);
        double x = -(m - 0.5) / 2 * (log(s_rng_unit(&r)) + log(s_rng_unit(&r)));
        uint32_t n = 1 + (uint32_t) x;
        if (n > cap)
            n = cap;
        g->unit_first[bi] = (uint32_t) total;
        total += n;
        if (total > UINT32_MAX)
            return false;
    }
    g->unit_first[g->n_buildings] = (uint32_t) total;
    g->n_units = (uint32_t) total;
    return true;
}

gs_gen_t *
gs_gen_new(const gs_gen_opts_t *opts)
{
    gs_gen_opts_t o;
    if (opts)
        o = *opts;
    else
        gs_gen_opts_init(&o);
    if (!s_digits6(o.district) || o.streets == 0 || o.streets > 399
        || o.grids < o.streets
        || (o.rental_buildings > 0 && o.units_per_building == 0)
        || o.units_per_building > 1000 || o.now_ms <= 0)
        return NULL;

    gs_gen_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->opts = o;
    memcpy(g->district, o.district, 7);
    g->opts.district = g->district;
    g->city = "";
    g->area_code = "0755";
    s_buf_t region = {0};
    for (size_t k = 0; k < sizeof(s_cities) / sizeof(s_cities[0]); k++)
        if (memcmp(g->district, s_cities[k].prefix, 4) == 0) {
            g->city = s_cities[k].city;
            s_buf_add(&region, s_cities[k].region);
            g->area_code = s_cities[k].area_code;
        }
    for (size_t k = 0; k < sizeof(s_district_names) / sizeof(s_district_names[0]); k++)
        if (strcmp(g->district, s_district_names[k].code) == 0)
            s_buf_add(&region, s_district_names[k].name);
    s_copy_buf(g->region, sizeof(g->region), &region);
    g->n_streets = o.streets;
    g->n_grids = o.grids;
    g->n_households = o.households;
    g->n_buildings = o.rental_buildings;

    int64_t ms = o.now_ms + S_CST_MS;
    g->today = ms / S_DAY_MS - (ms % S_DAY_MS < 0);
    int mo, d;
    gs_civil_from_days(g->today, &g->this_year, &mo, &d);

    g->streets = calloc(g->n_streets, sizeof(s_street_t));
    g->grids = calloc(g->n_grids, sizeof(s_grid_t));
    g->hh_first = calloc((size_t) g->n_grids + 1, sizeof(uint32_t));
    g->bld_first = calloc((size_t) g->n_grids + 1, sizeof(uint32_t));
    g->unit_first = calloc((size_t) g->n_buildings + 1, sizeof(uint32_t));
    g->n_orgs = o.organisations;
    g->org_first = calloc((size_t) g->n_grids + 1, sizeof(uint32_t));
    if (!g->streets || !g->grids || !g->hh_first || !g->bld_first
        || !g->unit_first || !g->org_first || !s_layout_hierarchy(g)
        || !s_layout_records(g)) {
        gs_gen_destroy(&g);
        return NULL;
    }
    /* organisations: spread evenly over the grids */
    for (uint32_t k = 0; k <= g->n_grids; k++)
        g->org_first[k] = (uint32_t) ((uint64_t) g->n_orgs * k / g->n_grids);
    gs_verdict_t v;
    if (gs_gridcode_check(g->grids[0].code, &v)) {
        gs_gen_destroy(&g);
        return NULL;
    }

    g->slot_tenants = (uint64_t) g->n_households * S_HH_SLOTS;
    g->slot_landlords = g->slot_tenants + (uint64_t) g->n_units * S_UNIT_SLOTS;
    uint64_t slots = g->slot_landlords + g->n_buildings;
    if (slots > S_SLOTS_MAX) {
        gs_gen_destroy(&g);
        return NULL;
    }
    g->year_classes = (uint32_t) ((slots + S_ID_CLASS - 1) / S_ID_CLASS);
    if (g->year_classes == 0)
        g->year_classes = 1;
    g->perm_n = (uint64_t) g->year_classes * S_ID_CLASS;
    g->perm_half = 1;
    while ((1ull << (2 * g->perm_half)) < g->perm_n)
        g->perm_half++;
    for (int k = 0; k < 4; k++)
        g->perm_key[k] = s_mix(o.seed * 4 + (uint64_t) k + 0x1d5ull);
    return g;
}

void
gs_gen_destroy(gs_gen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_gen_t *g = *self_p;
    free(g->streets);
    free(g->communities);
    free(g->grids);
    free(g->hh_first);
    free(g->bld_first);
    free(g->unit_first);
    free(g->org_first);
    free(g);
    *self_p = NULL;
}

/* ---- Accessors --------------------------------------------------------------- */

uint32_t
gs_gen_grid_count(const gs_gen_t *self)
{
    return self->n_grids;
}

const char *
gs_gen_grid_code(const gs_gen_t *self, uint32_t grid)
{
    return grid < self->n_grids ? self->grids[grid].code : NULL;
}

const char *
gs_gen_grid_name(const gs_gen_t *self, uint32_t grid)
{
    return grid < self->n_grids ? self->grids[grid].name : NULL;
}

uint32_t
gs_gen_household_count(const gs_gen_t *self)
{
    return self->n_households;
}

uint32_t
gs_gen_rental_count(const gs_gen_t *self)
{
    return self->n_units;
}

void
gs_gen_grid_households(const gs_gen_t *self, uint32_t grid, uint32_t *first,
                       uint32_t *n)
{
    assert(grid < self->n_grids);
    *first = self->hh_first[grid];
    *n = self->hh_first[grid + 1] - self->hh_first[grid];
}

void
gs_gen_grid_rentals(const gs_gen_t *self, uint32_t grid, uint32_t *first,
                    uint32_t *n)
{
    assert(grid < self->n_grids);
    uint32_t a = self->unit_first[self->bld_first[grid]];
    uint32_t b = self->unit_first[self->bld_first[grid + 1]];
    *first = a;
    *n = b - a;
}

uint32_t
gs_gen_org_count(const gs_gen_t *self)
{
    return self->n_orgs;
}

void
gs_gen_grid_orgs(const gs_gen_t *self, uint32_t grid, uint32_t *first, uint32_t *n)
{
    assert(grid < self->n_grids);
    *first = self->org_first[grid];
    *n = self->org_first[grid + 1] - self->org_first[grid];
}
