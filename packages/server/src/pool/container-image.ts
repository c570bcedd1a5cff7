/**
 * @module pool/container-image
 * How a custom container pool names its image to the puller: the reference pinned to the digest
 * pulled at create/update, and the registry credentials taken from the pool's secrets.
 */

import {
  parseImageReference,
  type PulledImage,
  type PullStage,
  type RegistryCredentials,
} from '../sandbox/image/image-puller.js';
import type { ContainerTemplate, PoolSpec } from './pool-spec.js';

/** How a pool's image reference is read; the API checks a template's image with it. */
export { parseImageReference };

/** Where images come from (the ImagePuller; a fake in unit tests). */
export interface ImageSource {
  pull(
    reference: string,
    credentials: RegistryCredentials | undefined,
    onStage?: (stage: PullStage) => void,
  ): Promise<PulledImage>;
}

/** `registry/repository@digest`: what the pool runs, whatever its tag points to now. */
export function pinnedReference(container: ContainerTemplate): string {
  if (container.imageDigest === null) throw new Error(`image ${container.image} is not pulled yet`);
  const ref = parseImageReference(container.image);
  return `${ref.registry}/${ref.repository}@${container.imageDigest}`;
}

/** The registry credentials of the pool, with the password read from its secret. */
export function registryCredentials(spec: PoolSpec): RegistryCredentials | undefined {
  const registry = spec.container?.registry;
  if (!registry) return undefined;
  const password = spec.secrets.find((s) => s.name === registry.passwordSecretRef)?.value ?? '';
  return { username: registry.username, password };
}
