/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_backend.c - the transport backend over an emulated controller.
 *
 * DMA mapping goes to the emulator's IOVA table; the slow-path wait hook steps
 * a stepped emulator (so busy-wait loops make progress with no thread) and
 * only relaxes the CPU when the emulator has a thread of its own. Closing
 * does nothing: whoever created the emulator destroys it.
 */
#include <sched.h>

#include <pnvme/emu.h>

#include "internal.h"
#include "emu_priv.h"

/* IOVAs the library may hand out: above 1 MiB (IOVA 0 means "unmapped"), 48 bits. */
#define EMU_IOVA_BASE (1ull << 20)
#define EMU_IOVA_END  (1ull << 48)

static int emu_be_map(void *ctx, void *vaddr, uint64_t iova, size_t len)
{
	return pnvme_emu_map(ctx, vaddr, iova, len);
}

static int emu_be_unmap(void *ctx, uint64_t iova, size_t len)
{
	return pnvme_emu_unmap(ctx, iova, len);
}

static void emu_be_wait(void *ctx)
{
	static _Thread_local unsigned spins;
	struct pnvme_emu *emu = ctx;

	if (!pnvme_emu_threaded(emu)) {
		pnvme_emu_step(emu);
		return;
	}
	/* the emulator thread may share our core: yield now and then */
	if ((++spins & 63u) == 0)
		sched_yield();
	else
		pnvme_cpu_relax();
}

static void emu_be_close(void *ctx)
{
	(void)ctx;
}

/*
 * BAR2 is the emulator's CMB. Its "bus address" is the end of the IOVA
 * window: no IOVA of host memory can ever equal a CMB address.
 */
static int emu_be_bar_map(void *ctx, unsigned bir, volatile uint8_t **va, size_t *len,
			  uint64_t *bus)
{
	size_t n = 0;
	volatile void *cmb = pnvme_emu_cmb(ctx, &n);

	if (bir != 2 || cmb == NULL)
		return pnvme_fail(-ENOTSUP, "emu: BAR%u is not implemented", bir);
	*va = (volatile uint8_t *)cmb;
	*len = n;
	*bus = EMU_IOVA_END;
	return 0;
}

static int emu_be_irq_set(void *ctx, unsigned vector, int fd)
{
	return emu_irq_set(ctx, vector, fd);
}

static const struct pnvme_backend_ops emu_backend_ops = {
	.name = "emu",
	.dma_map = emu_be_map,
	.dma_unmap = emu_be_unmap,
	.wait = emu_be_wait,
	.close = emu_be_close,
	.bar_map = emu_be_bar_map,
	.irq_set = emu_be_irq_set,
};

int pnvme_emu_backend_init(struct pnvme_emu *emu, struct pnvme_backend *be)
{
	size_t len = 0;

	if (emu == NULL || be == NULL)
		return pnvme_fail(-EINVAL, "emu backend: no emulator");
	be->ops = &emu_backend_ops;
	be->ctx = emu;
	be->bar = (volatile uint8_t *)pnvme_emu_bar(emu, &len);
	be->bar_len = len;
	be->iova_base = EMU_IOVA_BASE;
	be->iova_end = EMU_IOVA_END;
	be->db_polled = true;
	return 0;
}
