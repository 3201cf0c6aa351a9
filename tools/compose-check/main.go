// compose-check loads each compose file given as an argument the way `docker compose config`
// does (compose-go: interpolation, merge keys, the compose specification's schema, then the
// project's own checks: undefined services in depends_on, undefined volumes and networks), and
// prints one line per file. Exit 1 when any file fails. Built by scripts/tools.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func check(file string) (int, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return 0, err
	}
	options, err := cli.NewProjectOptions([]string{abs},
		cli.WithOsEnv,
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithResolvedPaths(true),
		cli.WithProfiles([]string{"*"}))
	if err != nil {
		return 0, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return 0, err
	}
	return len(project.ServiceNames()), nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE...")
		os.Exit(2)
	}
	status := 0
	for _, file := range os.Args[1:] {
		services, err := check(file)
		if err != nil {
			fmt.Printf("%s: %v\n", file, err)
			status = 1
			continue
		}
		fmt.Printf("%s: ok (%d services)\n", file, services)
	}
	os.Exit(status)
}
