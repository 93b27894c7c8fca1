/*
 * users.h - the submission accounts (`users FILE`, issue 16): lines
 * "address:HASH[:ignored...]" as a Dovecot passwd-file holds them (the
 * same file serves IMAP), '#' comments and blank lines skipped.  HASH is
 * "{ARGON2ID}$argon2id$..." as `mxfb passwd` prints it, or the bare
 * "$argon2id$..." form.
 *
 * Guarantees: the file is used only while it is a regular file (not a
 * link) that no one but its owner may write and others may not read
 * (group read is right: Dovecot's auth reads it as `dovecot`);
 * users_refresh re-reads it when its inode, size or modification time
 * change.  users_verify costs one Argon2id verification whatever the
 * outcome: an unknown address, or a line whose hash is not Argon2id,
 * is checked against a dummy hash made with `mxfb passwd`'s limits, so
 * the time of a reply tells nothing about which accounts exist.
 * Addresses match exactly in the local part and case-insensitively in
 * the domain (RFC 5321 2.4: only the local part may be case-sensitive).
 */
#ifndef MXFB_USERS_H
#define MXFB_USERS_H

#include <sys/types.h>
#include <stddef.h>
#include <time.h>

#define USERS_LINE_MAX		4096
#define USERS_MAX		100000	/* accounts one file may hold */

struct user_account {
	char	*addr;
	char	*hash;		/* "$argon2id$...", or NULL: a bad line */
};

struct users_file {
	dev_t			 dev;	/* what was read: 0/0 nothing */
	ino_t			 ino;
	off_t			 size;
	struct timespec		 mtime;
	struct user_account	*v;
	size_t			 n;
	size_t			 nbad;	/* lines that were not accounts */
};

/*
 * Is the file at path one that may be used (regular, not a link, no
 * write but by its owner, no read by others)?  0, or -1 with why.
 */
int	 users_file_check(const char *path, char *why, size_t);

/*
 * Check path (users_file_check) and (re)read it when it is not the file
 * already read.  0, or -1 with why (the accounts read before are
 * dropped: a refused file serves no one).
 */
int	 users_refresh(struct users_file *, const char *path, char *why,
	    size_t);

/* 1 when addr's password is password, else 0; constant cost (above). */
int	 users_verify(const struct users_file *, const char *addr,
	    const char *password);

void	 users_free(struct users_file *);

/*
 * One line of the file (its line end removed), split in place:
 * 1 an account (*addr, *hash: the Argon2id string without the scheme,
 * NULL when the hash is not one), 0 a comment or blank line, -1 not an
 * account line (no ':', an empty or bad address).
 */
int	 users_parse_line(char *line, char **addr, char **hash);

/* Local parts exactly, domains case-insensitively. */
int	 users_addr_equal(const char *, const char *);

#endif
