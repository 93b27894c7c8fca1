/*
 * users.c - the submission accounts file (see users.h).
 *
 * The file is checked with lstat, opened with O_NOFOLLOW and checked
 * again with fstat on what was opened (the same inode), so that nothing
 * swapped in between is read.  A hash stays in memory as the file gave
 * it; passwords never do beyond users_verify's caller.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "core/log.h"
#include "core/users.h"
#include "core/util.h"

#define SCHEME		"{ARGON2ID}"
#define SCHEME_LEN	(sizeof(SCHEME) - 1)
#define ARGON2ID	"$argon2id$"
#define ADDR_MAX	320

/*
 * Made by `mxfb passwd` (Argon2id, libsodium's interactive limits, as
 * every hash it prints) from a password nobody knows: what an unknown
 * address is checked against, at the price of a real one.
 */
static const char dummy_hash[] = "$argon2id$v=19$m=65536,t=2,p=1$"
    "yU5scb2dyq6HmlOdgBOqmA$EmPMTBbuzel7VKMGy2BNVMauLGZEkRfV/UPY+gwESbw";

static int	 mode_refused(const struct stat *, char *, size_t);
static int	 addr_valid(const char *);
static int	 read_accounts(struct users_file *, FILE *);

int
users_addr_equal(const char *a, const char *b)
{
	const char	*at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');

	if (at_a == NULL || at_b == NULL || at_a - a != at_b - b)
		return (0);
	return (memcmp(a, b, (size_t)(at_a - a)) == 0 &&
	    strcasecmp(at_a + 1, at_b + 1) == 0);
}

/* local@domain, printable ASCII without blanks, one '@', not too long. */
static int
addr_valid(const char *s)
{
	const char	*at = strrchr(s, '@');
	size_t		 i, len = strlen(s);

	if (at == NULL || at == s || at[1] == '\0' || len > ADDR_MAX)
		return (0);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
			return (0);
	return (1);
}

int
users_parse_line(char *line, char **addr, char **hash)
{
	char	*p, *colon;

	*addr = *hash = NULL;
	for (p = line; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '\0' || *p == '#')
		return (0);
	if ((colon = strchr(line, ':')) == NULL)
		return (-1);
	*colon = '\0';
	if (!addr_valid(line))
		return (-1);
	*addr = line;
	p = colon + 1;
	if ((colon = strchr(p, ':')) != NULL)
		*colon = '\0';		/* uid, gid, home...: not ours */
	if (strncmp(p, SCHEME, SCHEME_LEN) == 0)
		p += SCHEME_LEN;
	if (strncmp(p, ARGON2ID, sizeof(ARGON2ID) - 1) == 0 &&
	    strlen(p) < crypto_pwhash_STRBYTES)
		*hash = p;
	return (1);
}

/* The reason the file at this mode may not be used, else 0. */
static int
mode_refused(const struct stat *sb, char *why, size_t size)
{
	if (S_ISLNK(sb->st_mode))
		snprintf(why, size, "a symbolic link (name the file itself)");
	else if (!S_ISREG(sb->st_mode))
		snprintf(why, size, "not a regular file");
	else if (sb->st_mode & (S_IWGRP | S_IWOTH))
		snprintf(why, size, "writable by others than its owner (mode "
		    "%04o; chmod 0640)", (unsigned)(sb->st_mode & 07777));
	else if (sb->st_mode & S_IROTH)
		snprintf(why, size, "readable by others (mode %04o; chmod "
		    "0640)", (unsigned)(sb->st_mode & 07777));
	else
		return (0);
	return (-1);
}

int
users_file_check(const char *path, char *why, size_t size)
{
	struct stat	 sb;
	char		 reason[256];

	if (lstat(path, &sb) == -1) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (mode_refused(&sb, reason, sizeof(reason)) == -1) {
		snprintf(why, size, "%s: %s", path, reason);
		return (-1);
	}
	return (0);
}

/* Every line of f into u (empty before); -1 with errno on a read error. */
static int
read_accounts(struct users_file *u, FILE *f)
{
	char	 line[USERS_LINE_MAX + 2], *addr, *hash;
	size_t	 len, cap = 0;
	int	 long_line = 0, r;

	while (fgets(line, sizeof(line), f) != NULL) {
		len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f)) {
			long_line = 1;	/* the rest of it comes next */
			continue;
		}
		if (long_line) {
			long_line = 0;
			u->nbad++;
			continue;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if ((r = users_parse_line(line, &addr, &hash)) <= 0) {
			if (r == -1)
				u->nbad++;
			continue;
		}
		if (hash == NULL)
			u->nbad++;
		if (u->n == USERS_MAX)
			break;
		if (u->n == cap) {
			cap = cap ? cap * 2 : 16;
			u->v = xreallocarray(u->v, cap, sizeof(*u->v));
		}
		u->v[u->n].addr = xstrdup(addr);
		u->v[u->n].hash = hash != NULL ? xstrdup(hash) : NULL;
		u->n++;
	}
	sodium_memzero(line, sizeof(line));
	return (ferror(f) ? -1 : 0);
}

int
users_refresh(struct users_file *u, const char *path, char *why,
    size_t size)
{
	struct stat	 sb, fsb;
	FILE		*f;
	int		 fd, saved;

	if (users_file_check(path, why, size) == -1 ||
	    lstat(path, &sb) == -1) {
		users_free(u);
		return (-1);
	}
	if (u->ino != 0 && sb.st_dev == u->dev && sb.st_ino == u->ino &&
	    sb.st_size == u->size &&
	    sb.st_mtim.tv_sec == u->mtime.tv_sec &&
	    sb.st_mtim.tv_nsec == u->mtime.tv_nsec)
		return (0);
	users_free(u);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1 ||
	    fstat(fd, &fsb) == -1 || fsb.st_dev != sb.st_dev ||
	    fsb.st_ino != sb.st_ino || (f = fdopen(fd, "r")) == NULL) {
		saved = errno;
		if (fd != -1)
			(void)close(fd);
		snprintf(why, size, "%s: %s", path, fd != -1 &&
		    fsb.st_ino != sb.st_ino ? "replaced while opened" :
		    strerror(saved));
		return (-1);
	}
	if (read_accounts(u, f) == -1) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		(void)fclose(f);
		users_free(u);
		return (-1);
	}
	(void)fclose(f);
	u->dev = fsb.st_dev;
	u->ino = fsb.st_ino;
	u->size = fsb.st_size;
	u->mtime = fsb.st_mtim;
	if (u->nbad > 0)
		log_warnx("users %s: %zu line%s that are no Argon2id "
		    "account: those addresses cannot log in", path, u->nbad,
		    u->nbad == 1 ? "" : "s");
	return (0);
}

int
users_verify(const struct users_file *u, const char *addr,
    const char *password)
{
	const char	*hash = NULL;
	size_t		 i;
	int		 ok;

	for (i = 0; i < u->n; i++)
		if (users_addr_equal(u->v[i].addr, addr)) {
			hash = u->v[i].hash;
			break;
		}
	ok = crypto_pwhash_str_verify(hash != NULL ? hash : dummy_hash,
	    password, strlen(password)) == 0;
	return (hash != NULL && ok);
}

void
users_free(struct users_file *u)
{
	size_t	 i;

	for (i = 0; i < u->n; i++) {
		free(u->v[i].addr);
		if (u->v[i].hash != NULL)
			sodium_memzero(u->v[i].hash, strlen(u->v[i].hash));
		free(u->v[i].hash);
	}
	free(u->v);
	memset(u, 0, sizeof(*u));
}
