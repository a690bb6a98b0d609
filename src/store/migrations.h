/* migrations — the schema versions embedded in the binary (generated from
 * src/store/migrations/<backend>/NNN_name.sql by tools/embed.c). Each array
 * ends with a {0, NULL, NULL} entry. */
#ifndef EH_STORE_MIGRATIONS_H
#define EH_STORE_MIGRATIONS_H

typedef struct store_migration {
    int version;
    const char *name;
    const char *sql;
} store_migration;

extern const store_migration sqlite_migrations[];
extern const store_migration postgres_migrations[];

#endif
