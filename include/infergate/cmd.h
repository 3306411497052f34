/* Subcommand entry points; each returns a process exit status. */
#ifndef INFERGATE_CMD_H
#define INFERGATE_CMD_H

int ig_cmd_serve(int argc, char **argv);
int ig_cmd_check(int argc, char **argv);
int ig_cmd_sim(int argc, char **argv);
int ig_cmd_bench(int argc, char **argv);
int ig_cmd_demo(int argc, char **argv);
int ig_cmd_epp(int argc, char **argv);

#endif
