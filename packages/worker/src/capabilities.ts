import { accessSync, constants } from 'node:fs';
import { hostname } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Tools looked for on PATH when none are configured. */
export const KNOWN_TOOLS = [
  'bash',
  'cargo',
  'docker',
  'dotnet',
  'gcc',
  'git',
  'go',
  'helm',
  'java',
  'kubectl',
  'make',
  'mvn',
  'node',
  'npm',
  'pnpm',
  'podman',
  'python3',
  'rustc',
  'terraform',
  'yarn',
] as const;

/** The operating system as workers advertise it: `linux`, `windows`, `macos`, or Node's platform name. */
export function osName(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return 'windows';
  if (platform === 'darwin') return 'macos';
  return platform;
}

/** Which of `candidates` are executables on `path` (the PATH variable). */
export function detectTools(
  path: string = process.env.PATH ?? '',
  candidates: readonly string[] = KNOWN_TOOLS,
): string[] {
  const dirs = path.split(delimiter).filter(Boolean);
  const extensions = process.platform === 'win32' ? ['.exe', '.cmd', '.bat', ''] : [''];
  return candidates.filter((tool) =>
    dirs.some((dir) =>
      extensions.some((extension) => {
        try {
          accessSync(join(dir, tool + extension), constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
    ),
  );
}

/** `worker-<hostname>-<random>`: unique per start, recognisable per machine. */
export function defaultWorkerId(): string {
  const host =
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .slice(0, 48) || 'host';
  return `worker-${host}-${randomBytes(3).toString('hex')}`;
}
